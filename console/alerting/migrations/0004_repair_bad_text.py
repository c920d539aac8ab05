"""Issue 13: rows stored with NUL or lone surrogates (before the input policy) get U+FFFD instead."""

from django.db import migrations

from console.core.inputs import repair_rows

FIELDS = {
    "AlertRule": ["name", "matchers", "summary_template", "description_template", "runbook_url", "group_by"],
    "Silence": ["matchers", "comment", "created_by_name"],
    "Alert": ["ack_comment", "acknowledged_by_name"],
    "NotificationChannel": ["name", "url", "address", "matchers"],
}


def repair(apps, schema_editor):
    for model, fields in FIELDS.items():
        repair_rows(apps.get_model("alerting", model), fields, schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ("alerting", "0003_transition_actor"),
    ]

    operations = [migrations.RunPython(repair, migrations.RunPython.noop)]

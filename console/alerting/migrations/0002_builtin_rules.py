"""Create the built-in alert rules (node unreachable, accelerator health, instance crash loop, job
degraded, probe failing, disk nearly full), enabled."""

from django.db import migrations


def create_builtin_rules(apps, schema_editor):
    from console.alerting.builtin import create_missing

    create_missing(apps.get_model("alerting", "AlertRule"))


class Migration(migrations.Migration):
    dependencies = [("alerting", "0001_initial")]

    operations = [migrations.RunPython(create_builtin_rules, migrations.RunPython.noop)]

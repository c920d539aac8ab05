"""Issue 13: rows stored with NUL or lone surrogates (before the input policy) get U+FFFD instead."""

from django.db import migrations

from console.core.inputs import repair_rows


def repair(apps, schema_editor):
    repair_rows(apps.get_model("console", "Event"), ["actor", "object_id", "object_repr", "detail"],
                schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ("console", "0002_stream_entries_and_rollup_watermarks"),
    ]

    operations = [migrations.RunPython(repair, migrations.RunPython.noop)]

"""API tokens get a name and a user may hold several (issue 17: tokens managed on the console's pages).

Tokens that exist already were made by ``manage.py drf_create_token`` (or moved from DRF's table by 0004):
they are named ``drf_create_token``, the one token that command manages, so ``-r`` still replaces them."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def name_existing_tokens(apps, schema_editor):
    apps.get_model("console", "ApiToken").objects.filter(name="").update(name="drf_create_token")


class Migration(migrations.Migration):

    dependencies = [
        ("console", "0004_api_tokens_hashed"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="apitoken",
            options={"ordering": ["user_id", "-created", "-id"], "verbose_name": "API token",
                     "verbose_name_plural": "API tokens"},
        ),
        migrations.AddField(
            model_name="apitoken",
            name="name",
            field=models.CharField(blank=True, max_length=64, verbose_name="name"),
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="user",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="api_tokens",
                                    to=settings.AUTH_USER_MODEL, verbose_name="user"),
        ),
        migrations.RunPython(name_existing_tokens, migrations.RunPython.noop),
    ]

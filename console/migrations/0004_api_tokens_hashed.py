"""Issue 13: API tokens stored as SHA-256 digests. Keys in DRF's authtoken table (when an older version
left one) are hashed into console_apitoken, so their holders keep using the same key, and then removed."""

import hashlib

from django.conf import settings
from django.db import migrations, models


def hash_existing_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("console", "ApiToken")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, user_id FROM authtoken_token")
        rows = cursor.fetchall()
    users = set(User.objects.filter(id__in=[user_id for _, user_id in rows]).values_list("id", flat=True))
    for key, user_id in rows:
        if user_id in users:
            ApiToken.objects.update_or_create(user_id=user_id, defaults={
                "digest": hashlib.sha256(key.encode()).hexdigest(), "prefix": key[:8]})
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM authtoken_token")


class Migration(migrations.Migration):

    dependencies = [
        ("console", "0003_repair_bad_text"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("digest", models.CharField(editable=False, max_length=64, unique=True, verbose_name="digest")),
                ("prefix", models.CharField(editable=False, max_length=8, verbose_name="prefix")),
                ("created", models.DateTimeField(auto_now_add=True, verbose_name="created")),
                ("user", models.OneToOneField(on_delete=models.deletion.CASCADE, related_name="api_token",
                                              to=settings.AUTH_USER_MODEL, verbose_name="user")),
            ],
            options={"verbose_name": "API token", "verbose_name_plural": "API tokens"},
        ),
        migrations.RunPython(hash_existing_tokens, migrations.RunPython.noop),
    ]

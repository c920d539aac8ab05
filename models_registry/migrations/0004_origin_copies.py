"""The node a version was imported from holds its first copy: one ``origin`` copy per existing version
whose files lie in a directory on a node (ready when the version is verified)."""

from urllib.parse import unquote, urlparse

from django.db import migrations

STATUS = {"registered": "pending", "verifying": "pending", "verified": "ready", "failed": "failed",
          "deprecated": "pending"}


def directory(source_uri: str) -> str | None:
    if source_uri.startswith("/"):
        return source_uri.rstrip("/") or "/"
    if source_uri.startswith("file://"):
        return unquote(urlparse(source_uri).path).rstrip("/") or "/"
    return None


def forwards(apps, schema_editor):
    ModelVersion = apps.get_model("models_registry", "ModelVersion")
    ModelCopy = apps.get_model("models_registry", "ModelCopy")
    CopyStatusChange = apps.get_model("models_registry", "CopyStatusChange")
    for version in ModelVersion.objects.filter(node__isnull=False).iterator():
        path = directory(version.source_uri)
        if path is None or ModelCopy.objects.filter(version=version, node_id=version.node_id).exists():
            continue
        if version.catalog and not version.files.exists():
            continue
        status = STATUS.get(version.status, "pending")
        copy = ModelCopy.objects.create(
            version=version, node_id=version.node_id, path=path, origin=True, status=status,
            status_detail="the directory the version was imported from", size_bytes=version.size_bytes,
            verified_at=version.verified_at if status == "ready" else None,
            progress=1.0 if status == "ready" else None,
            bytes_done=(version.size_bytes or 0) if status == "ready" else 0)
        CopyStatusChange.objects.create(copy=copy, from_status="", to_status=status,
                                        reason="the directory the version was imported from (migration)")


class Migration(migrations.Migration):
    dependencies = [("models_registry", "0003_model_copies")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]

"""Liveness and readiness endpoints: ``/healthz`` and ``/readyz`` (shared/API.md)."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from console.celery import app
from console.supervisor import read_status, status_path


@require_GET
def healthz(request):
    """200 while the process lives."""
    return JsonResponse({"status": "ok"})


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        return f"database: {exc.__class__.__name__}: {exc}"
    return None


def check_broker() -> str | None:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"broker: {exc.__class__.__name__}: {exc}"
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        folder = settings.BROKER_DIR / "queue"
        if not folder.is_dir():
            return f"broker: spool folder {folder} is missing"
    return None


def check_supervised_parts() -> list[str]:
    """Under ``make run``: the parts the launcher's supervisor reports down or restarting."""
    status = read_status(status_path(settings.DATA_DIR))
    if status is None:
        return []
    return [f"{name}: {part.get('state')} ({part.get('last_exit') or 'starting'})"
            for name, part in sorted((status.get("parts") or {}).items()) if part.get("state") != "running"]


@require_GET
def readyz(request):
    """200 only when the database and the broker answer and no supervised part is down or restarting;
    503 naming the failing parts otherwise (``failures``: what failed and why; ``parts``: their names)."""
    failures = [problem for problem in (check_database(), check_broker()) if problem]
    failures += check_supervised_parts()
    if failures:
        # "parts": the names alone ("database", "broker", "worker"...), as the 503s of other routes name them.
        parts = [failure.split(":", 1)[0] for failure in failures]
        return JsonResponse({"status": "unavailable", "failures": failures, "parts": parts}, status=503)
    return JsonResponse({"status": "ready"})

"""BooM Console project package: settings, URLs, ASGI, Celery, and cross-cutting features."""

from console.celery import app as celery_app

__all__ = ["celery_app"]

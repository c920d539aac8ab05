"""The Celery app (``celery -A console worker -Q lifecycle,telemetry,long``; beat: ``celery -A console beat``)."""

import os

from celery import Celery

from console.broker import install as install_embedded_broker
from console.core.logfilters import install_quiet

install_embedded_broker()
install_quiet()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


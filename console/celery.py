"""The Celery app (``celery -A console worker -Q lifecycle,telemetry,long``; beat: ``celery -A console beat``)."""

import os

from celery import Celery
from celery.worker.consumer import Consumer

from console.broker import install as install_embedded_broker
from console.core.logfilters import install_quiet

install_embedded_broker()
install_quiet()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# How soon a worker tries its broker again after losing it. Celery's consumer retries after 2 s, then 4, 6,
# ... up to 30 s between tries: after a Redis outage of a minute a worker came back up to half a minute after
# Redis did. Here: 0.5 s, then +0.5 s, never more than 2 s between tries, so new work runs within a few
# seconds of the broker answering again (issue 12: within 10 s). CELERY_WORKER_CONSUMER (settings) names it.
BROKER_RETRY_START_S, BROKER_RETRY_STEP_S, BROKER_RETRY_MAX_S = 0.5, 0.5, 2.0


class ReconnectingConsumer(Consumer):
    """Celery's consumer with the shorter broker retry intervals above."""

    def ensure_connected(self, conn):
        ensure = conn.ensure_connection

        def ensure_connection(*args, **kwargs):
            kwargs.setdefault("interval_start", BROKER_RETRY_START_S)
            kwargs.setdefault("interval_step", BROKER_RETRY_STEP_S)
            kwargs.setdefault("interval_max", BROKER_RETRY_MAX_S)
            return ensure(*args, **kwargs)

        conn.ensure_connection = ensure_connection
        return super().ensure_connected(conn)

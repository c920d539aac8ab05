"""A worker that lost its broker tries again every 0.5 to 2 s (console.celery.ReconnectingConsumer), not
after Celery's 2, 4, 6 ... 30 s: after a Redis outage the workers took new work up to half a minute late."""

import socket

import pytest
from celery import Celery
from kombu import Connection
from kombu.exceptions import OperationalError

from console.celery import BROKER_RETRY_MAX_S, ReconnectingConsumer, app


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_workers_use_the_reconnecting_consumer():
    assert app.conf.worker_consumer == "console.celery:ReconnectingConsumer"


def test_a_lost_broker_is_tried_again_every_two_seconds_at_most(monkeypatch):
    waits = []  # the wait before each new try, as the consumer logs it
    monkeypatch.setattr("celery.worker.consumer.consumer.humanize_seconds",
                        lambda seconds, *args, **kwargs: waits.append(seconds) or f"in {seconds} s")
    monkeypatch.setattr("celery.worker.consumer.consumer.error", lambda *args, **kwargs: None)
    monkeypatch.setattr("kombu.utils.functional.sleep", lambda seconds: None)  # the test need not wait them
    consumer = ReconnectingConsumer.__new__(ReconnectingConsumer)
    consumer.app = Celery("probe", set_as_current=False)
    consumer.app.conf.broker_connection_max_retries = 6
    consumer.first_connection_attempt = False
    consumer.broker_connection_retry_attempt = 0
    with pytest.raises(OperationalError):
        consumer.ensure_connected(Connection(f"redis://127.0.0.1:{closed_port()}/0", connect_timeout=1))
    waits = [w for w in waits if w]  # kombu's first failure of a round is reported with no wait
    assert len(waits) >= 5 and waits[0] <= 0.5 and max(waits) <= BROKER_RETRY_MAX_S, waits

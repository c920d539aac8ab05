"""Alerting test fixtures: a real HTTP receiver and a real SMTP server on loopback, telemetry samples,
rules and channels."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from console.alerting.models import AlertRule, NotificationChannel


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records every request and answers from a script:
    ``receiver.script(500, 500, 200)`` answers 500 twice then 200; ``delay`` makes it slow."""

    def __init__(self):
        self.requests: list[dict] = []
        self.plan: deque = deque()
        self.default = (200, b"ok", 0.0, {})
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with receiver.lock:
                    status, answer, delay, headers = receiver.plan.popleft() if receiver.plan else receiver.default
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                              "raw": raw, "time": time.time(), "status": status})
                    receiver.arrived.notify_all()
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up (time-out): that is the point of a slow receiver

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def script(self, *answers):
        """Queue answers: a status code, or (status, body, delay_s[, headers])."""
        for answer in answers:
            if isinstance(answer, int):
                answer = (answer, b"ok" if answer < 300 else b"error", 0.0, {})
            status, body, delay, *rest = answer
            self.plan.append((status, body if isinstance(body, bytes) else body.encode(), delay,
                              rest[0] if rest else {}))

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
                self.arrived.wait(left)
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


class SmtpSink:
    def __init__(self, refuse: set[str] | None = None):
        self.messages = []
        self.refuse = refuse or set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd API
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server (aiosmtpd) on loopback; Django's SMTP backend points at it."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink(refuse={"nobody@example.com"})
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.DEFAULT_FROM_EMAIL = "boom@example.com"
    sink.port = port
    yield sink
    controller.stop()


@pytest.fixture
def fast_delivery(settings):
    """Short time-outs and back-off, so that failure tests run in seconds."""
    settings.CONSOLE_NOTIFY_TIMEOUT_S = 1
    settings.CONSOLE_NOTIFY_RETRY_FIRST_S = 1
    settings.CONSOLE_NOTIFY_RETRY_MAX_S = 4
    settings.CONSOLE_EXTERNAL_URL = "http://console.example:8000"
    return settings


@pytest.fixture
def quiet_builtins(db):
    """Disable the built-in rules, so that a test sees only the alerts of the rules it makes."""
    AlertRule.objects.filter(builtin=True).update(enabled=False)


@pytest.fixture
def now():
    return timezone.now()


def make_rule(**fields) -> AlertRule:
    values = {"name": "CPU hot", "kind": "threshold", "series": "node.cpu_percent", "comparator": ">",
              "threshold": 90, "for_seconds": 60, "severity": "warning", "group_wait_s": 0}
    values.update(fields)
    return AlertRule.objects.create(**values)


def make_channel(kind="webhook", url="http://127.0.0.1:9/hook", **fields) -> NotificationChannel:
    values = {"name": f"{kind}-{NotificationChannel.objects.count() + 1}", "kind": kind, "url": url}
    values.update(fields)
    secret = values.pop("secret", "")
    channel = NotificationChannel(**values)
    channel.set_secret(secret)
    channel.save()
    return channel


def node_sample(node, value_field="cpu_percent", value=95.0, at=None, **extra):
    from nodes.models import NodeSample

    moment = at or timezone.now()
    return NodeSample.objects.create(node=node, ts=int(moment.timestamp() * 1000), **{value_field: value}, **extra)


def later(moment, seconds):
    return moment + timedelta(seconds=seconds)

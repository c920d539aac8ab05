"""A real Alertmanager (Debian's ``prometheus-alertmanager``) on a free loopback port, with its own config and
storage in a temporary folder, for the alertmanager-api channel tests.

Usage::

    with Alertmanager(receiver_url) as am:          # one, clustering off
        am.url                                      # http://127.0.0.1:PORT
        am.alerts()                                 # GET /api/v2/alerts

    pair = alertmanager_pair(receiver_url)          # two, gossiping (--cluster.peer)

Its only receiver is a webhook (``receiver_url``, send_resolved true) with ``group_wait`` 1 s, ``group_interval``
1 s and ``repeat_interval`` 1 h. The process runs as a child of the test and is stopped on exit. Tests call
``require_alertmanager()`` first: locally a missing binary skips; under ``CI=true`` it fails
(scripts/ci-services.sh installs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"

CONFIG = """\
route:
  receiver: hook
  group_by: ['alertname', 'console']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: '{receiver_url}'
        send_resolved: true
"""


def require_alertmanager() -> None:
    from tests.conftest import require

    require(Path(ALERTMANAGER).exists(), "Alertmanager (apt-get install prometheus-alertmanager)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Alertmanager:
    def __init__(self, receiver_url: str, *, cluster_port: int | None = None, peers: list[str] | None = None):
        self.receiver_url = receiver_url
        self.dir = Path(tempfile.mkdtemp(prefix="boom-alertmanager-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cluster_port = cluster_port
        self.peers = peers or []
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Alertmanager:
        config = self.dir / "alertmanager.yml"
        config.write_text(CONFIG.format(receiver_url=self.receiver_url))
        args = [ALERTMANAGER, f"--config.file={config}", f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        if self.cluster_port:
            args += [f"--cluster.listen-address=127.0.0.1:{self.cluster_port}",
                     f"--cluster.advertise-address=127.0.0.1:{self.cluster_port}",
                     "--cluster.peer-timeout=2s", "--cluster.gossip-interval=100ms",
                     "--cluster.pushpull-interval=2s", "--cluster.settle-timeout=2s"]
            args += [f"--cluster.peer={peer}" for peer in self.peers]
        else:
            args.append("--cluster.listen-address=")  # empty: no clustering
        self.log = open(self.dir / "alertmanager.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"alertmanager exited with {self.process.returncode}: {self.log_text()}")
            try:
                if self.get("/-/ready") is not None:
                    return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"alertmanager did not get ready within {timeout} s: {self.log_text()}")

    def log_text(self) -> str:
        try:
            return (self.dir / "alertmanager.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as response:  # noqa: S310 - loopback
            body = response.read()
        try:
            return json.loads(body)
        except ValueError:
            return body.decode(errors="replace")

    def post(self, path: str, body) -> dict:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return json.loads(response.read() or b"{}")

    def alerts(self, **filters) -> list[dict]:
        """GET /api/v2/alerts (active, silenced, inhibited and unprocessed ones alike)."""
        query = "&".join(f"{k}={v}" for k, v in {"active": "true", "silenced": "true", "inhibited": "true",
                                                    "unprocessed": "true", **filters}.items())
        return self.get(f"/api/v2/alerts?{query}")

    def silence(self, matchers: dict[str, str], minutes: int = 30) -> str:
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC)
        body = {"matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
                "startsAt": now.isoformat().replace("+00:00", "Z"),
                "endsAt": (now + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
                "createdBy": "boom-tests", "comment": "test silence"}
        return self.post("/api/v2/silences", body)["silenceID"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        if getattr(self, "log", None) is not None:
            self.log.close()
            self.log = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Alertmanager:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def alertmanager_pair(receiver_url: str) -> list[Alertmanager]:
    """Two clustered Alertmanagers (each names the other as its peer), both started."""
    ports = [free_port(), free_port()]
    first = Alertmanager(receiver_url, cluster_port=ports[0], peers=[f"127.0.0.1:{ports[1]}"])
    second = Alertmanager(receiver_url, cluster_port=ports[1], peers=[f"127.0.0.1:{ports[0]}"])
    started = []
    try:
        for member in (first, second):
            started.append(member.start())
    except Exception:
        for member in started:
            member.close()
        raise
    return [first, second]

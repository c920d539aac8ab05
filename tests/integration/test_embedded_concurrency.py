"""The embedded profile (what `make run` starts with no configuration: SQLite and the filesystem broker)
under concurrent writes (issue 12, item 3): REST clients create, edit, put in maintenance and delete
nodes while the collector ingests 200 simulated nodes of 8 accelerators every second and the worker
probes every node. No "database is locked" reaches anyone: every write answers as it should (no 500,
no failed request), and neither the console's processes nor the collector log that error.

SQLite allows one writer at a time; the settings make every connection wait for the lock (WAL,
``timeout``, and ``BEGIN IMMEDIATE`` transactions, so that a reader never has to upgrade to a writer
and fail at once), and the collector writes each flush in one short transaction."""

import json
import re
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.integration.procs import ROOT, answers_200, free_port, start_launcher, stop, stop_launcher, wait_until

pytestmark = pytest.mark.integration

NODES = 200
CLIENTS = 4
WRITE_SECONDS = 30


def test_api_writes_while_the_collector_ingests_200_nodes_never_meet_a_locked_database(tmp_path):
    port, data = free_port(), tmp_path / "data"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PORT": str(port), "CONSOLE_DATA_DIR": str(data),
           "CONSOLE_ADMIN_PASSWORD": "correct-horse-battery", "CONSOLE_GATEWAY_PORT": str(free_port()),
           "CONSOLE_COLLECTOR": "false", "DJANGO_SETTINGS_MODULE": "console.settings", "PYTHONUNBUFFERED": "1"}
    base = f"http://127.0.0.1:{port}"
    launcher = start_launcher(env)
    collector = None
    collector_log = tmp_path / "collector.log"
    try:
        wait_until(lambda: answers_200(f"{base}/healthz"), 120, what="the web server")
        closed_port = free_port()
        seeded = subprocess.run([sys.executable, "-m", "tests.integration.embedded_seed", str(NODES), str(closed_port)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert seeded.returncode == 0, seeded.stderr
        seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        with collector_log.open("w") as log:
            collector = subprocess.Popen([sys.executable, "manage.py", "collect", "--simulate", "--stats-every", "2"],
                                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        database = data / "console.sqlite3"

        def samples() -> int:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as conn:
                return conn.execute("SELECT count(*) FROM nodes_acceleratorsample").fetchone()[0]

        wait_until(lambda: samples() >= NODES * 8, 120, interval=1, what="the collector's first samples")
        before = samples()
        results: list[tuple[str, int | str]] = []
        lock = threading.Lock()
        headers = {"Authorization": f"Token {seed['token']}"}

        def client(number: int) -> None:
            deadline = time.monotonic() + WRITE_SECONDS
            with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
                i = 0
                while time.monotonic() < deadline:
                    i += 1
                    steps = []
                    try:
                        created = http.post("/api/v1/nodes/", json={
                            "name": f"client{number}-{i}", "address": "127.0.0.1", "transport": "ssh",
                            "ssh_port": closed_port, "credential": seed["credential"]})
                        steps.append(("create", created.status_code, 201))
                        if created.status_code == 201:
                            pk = created.json()["id"]
                            steps.append(("edit", http.patch(f"/api/v1/nodes/{pk}/", json={
                                "labels": {"rack": f"r{i}"}}).status_code, 200))
                            steps.append(("maintenance", http.post(f"/api/v1/nodes/{pk}/maintenance/", json={
                                "enabled": True, "reason": "test"}).status_code, 200))
                            steps.append(("page", http.get("/api/v1/nodes/?page_size=50").status_code, 200))
                            steps.append(("delete", http.delete(f"/api/v1/nodes/{pk}/").status_code, 204))
                    except httpx.HTTPError as exc:
                        steps.append(("request", f"{type(exc).__name__}: {exc}", 0))
                    with lock:
                        results.extend(steps)

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=WRITE_SECONDS + 600)
        ingested = samples() - before
    finally:
        if collector is not None:
            stop(collector)
        code, output = stop_launcher(launcher)
    failed = [(op, got) for op, got, wanted in results if got != wanted]
    writes = sum(1 for op, got, wanted in results if op != "page" and got == wanted)
    print(f"{writes} writes answered as expected, {ingested} accelerator samples ingested meanwhile")
    assert not failed, failed[:20]
    assert writes >= CLIENTS * 4, results  # every client got at least one round of writes through
    assert ingested >= NODES * 8, "the collector wrote less than one second of samples during the writes"
    logs = output + collector_log.read_text(errors="replace")
    assert "database is locked" not in logs, [line for line in logs.splitlines() if "locked" in line][:10]
    # The collector's counters (logged every 2 s): a flush that met a lock longer than the timeout counts.
    counted = [int(n) for n in re.findall(r"(\d+) write errors", logs)]
    assert counted and counted[-1] == 0, counted
    assert code == 0, output[-3000:]

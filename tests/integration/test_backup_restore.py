"""`manage.py backup` while the console writes, `manage.py restore` into a fresh data folder (SQLite) or a
fresh database (PostgreSQL): every table comes back with the manifest's row counts, an SSH credential still
decrypts, a running engine is re-adopted with its pid; a wrong secret and a non-empty target are refused."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from nodes.crypto import SecretBox
from tests.conftest import require
from tests.integration.procs import ROOT, child_env, wait_until

pytestmark = pytest.mark.integration
SECRET = "backup-test-secret-not-for-production"


def sqlite_env(data_dir: Path, **extra) -> dict:
    env = child_env(**{"CONSOLE_DATA_DIR": data_dir, "CONSOLE_SECRET_KEY": SECRET, **extra})
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "CONSOLE_INSTANCE_PREFIX"):
        env.pop(name, None)
    return env


def manage(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def seed_script(env: dict, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "tests.integration.console_seed", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line.removeprefix("RESULT "))


def manifest_of(path: Path) -> dict:
    with tarfile.open(path) as tar:
        return json.load(tar.extractfile("manifest.json"))


class Writer(threading.Thread):
    """Commits one row at a time into auth_group while a backup runs."""

    def __init__(self, connect):
        super().__init__(daemon=True)
        self.connect, self.written, self.stopping, self.error = connect, 0, threading.Event(), None

    def run(self):
        try:
            conn = self.connect()
            sql = "INSERT INTO auth_group (name) VALUES (?)"
            if not isinstance(conn, sqlite3.Connection):
                sql = sql.replace("?", "%s")
            try:
                while not self.stopping.is_set():
                    # sqlite3's connection as a context manager commits; psycopg's would close it.
                    with conn if isinstance(conn, sqlite3.Connection) else conn.transaction():
                        conn.cursor().execute(sql, (f"w-{uuid.uuid4().hex}",))
                    self.written += 1
                    time.sleep(0.002)
            finally:
                conn.close()
        except Exception as exc:  # surfaced by started()
            self.error = exc

    def started(self) -> int:
        """Waits until the writer has committed a few rows; returns how many."""
        wait_until(lambda: self.written >= 20 or self.error, 60, interval=0.05, what="the writer")
        assert self.error is None, self.error
        return self.written

    def stop(self):
        self.stopping.set()
        self.join(30)
        assert self.error is None, self.error


def kill_engine(pid: int | None) -> None:
    """Kill the engine and its supervisor (supervise.sh, the engine's parent): each runs in a session (and
    group) of its own, and the supervisor killed first cannot start the engine again."""
    if not pid:
        return
    groups = [pid]
    try:
        parent = psutil.Process(pid).parent()
        if parent is not None and any(arg.endswith("/supervise.sh") for arg in parent.cmdline()):
            groups.insert(0, parent.pid)
    except psutil.Error:
        pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sqlite_round_trip_under_writes_brings_everything_back_and_re_adopts_the_engine(tmp_path):
    source, target = tmp_path / "console-a", tmp_path / "console-b"
    env_a = sqlite_env(source)
    seeded = seed_script(env_a, "seed")
    engine_pid = seeded["instance"]["pid"]
    try:
        writer = Writer(lambda: sqlite3.connect(source / "console.sqlite3", timeout=30))
        writer.start()
        try:
            before = writer.started()
            out = manage(env_a, "backup", str(tmp_path / "backups") + "/").stdout
            after = writer.written
        finally:
            writer.stop()
        assert "The secret key is NOT in the backup" in out
        backup = next((tmp_path / "backups").glob("boom-console-backup-*.tar.gz"))
        assert backup.stat().st_mode & 0o077 == 0
        manifest = manifest_of(backup)
        counts = manifest["database"]["row_counts"]
        groups = counts["auth.Group"]
        assert before <= groups <= after + 1, (before, groups, after)  # one instant while the writer wrote
        assert manifest["secret_key"]["source"] == "environment" and SECRET not in json.dumps(manifest)
        assert manifest["database"]["migrations"]["jobs"] and "broker" in manifest["data"]["left_out"]
        assert manifest["data"]["included"] == ["instances"]
        with tarfile.open(backup) as tar:
            assert not [n for n in tar.getnames() if "secret_key" in n or n.startswith("data/broker")]

        # A wrong secret is refused before anything is written, naming both fingerprints.
        wrong = manage(sqlite_env(target, CONSOLE_SECRET_KEY="another-secret"), "restore", str(backup), check=False)
        assert wrong.returncode != 0 and "fingerprint mismatch" in wrong.stderr
        assert manifest["secret_key"]["fingerprint"] in wrong.stderr
        assert not (target / "console.sqlite3").exists() or not _rows(target, "nodes_node")

        env_b = sqlite_env(target)
        restored = manage(env_b, "restore", str(backup)).stdout
        assert "1 stored secrets decrypt" in restored
        for label, n in counts.items():
            table = _table(label)
            assert _rows(target, table) == n, label
        blob = _query(target, "SELECT encrypted_private_key FROM nodes_credential")[0][0]
        assert SecretBox(SECRET).decrypt(blob) == seeded["private_key"]
        assert (target / "instance_prefix").read_text().strip() == seeded["instance"]["key"].split("-")[0]

        # The restored console re-adopts the engine that kept running: same pid, no restart.
        adopted = seed_script(env_b, "reconcile", str(seeded["job"]))
        assert adopted["state"] == "running", adopted
        assert adopted["pid"] == engine_pid and adopted["restart_count"] == 0 and adopted["key"] == \
            seeded["instance"]["key"]
        os.kill(engine_pid, 0)

        again = manage(env_b, "restore", str(backup), check=False)
        assert again.returncode != 0 and "not empty" in again.stderr and "--force" in again.stderr
    finally:
        kill_engine(engine_pid)


def _table(label: str) -> str:
    from django.apps import apps

    return apps.get_model(label)._meta.db_table


def _query(data_dir: Path, sql: str):
    with sqlite3.connect(data_dir / "console.sqlite3") as conn:
        return conn.execute(sql).fetchall()


def _rows(data_dir: Path, table: str) -> int:
    return _query(data_dir, f'SELECT COUNT(*) FROM "{table}"')[0][0]


@pytest.mark.django_db(transaction=True)
def test_postgresql_round_trip_under_writes_into_a_fresh_database(tmp_path, settings):
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    from console.alerting.models import AlertRule
    from console.management.backup import pg_params
    from jobs.gateway.services import create_key
    from nodes.services import create_credential, register_local_node
    from tests.integration.console_seed import private_key_pem
    from tests.jobs import factories as jf

    require(connection.vendor == "postgresql", "PostgreSQL (TEST_DATABASE_URL)")
    import psycopg

    admin = User.objects.create_user("admin", password="x" * 12)
    register_local_node()
    credential = create_credential(name="pg-key", username="ops", private_key=private_key_pem(), passphrase=None)
    AlertRule.objects.create(name="pg rule", series="node.cpu_percent", threshold=90)
    create_key(admin, name="pg app")
    jf.job(name="pg-job", engine="simulator", model_version=jf.version(status="registered"))
    params = pg_params(connection.settings_dict)
    writer = Writer(lambda: psycopg.connect(**params))
    writer.start()
    try:
        before = writer.started()
        call_command("backup", str(tmp_path / "pg.tar.gz"), stdout=open(os.devnull, "w"))
        after = writer.written
    finally:
        writer.stop()
    manifest = manifest_of(tmp_path / "pg.tar.gz")
    counts = manifest["database"]["row_counts"]
    assert manifest["database"]["vendor"] == "postgresql" and manifest["database"]["file"] == "database.pgdump"
    assert before <= counts["auth.Group"] <= after + 1

    fresh = f"boom_restore_{uuid.uuid4().hex[:10]}"
    admin_params = {**params, "dbname": "postgres"}
    with psycopg.connect(**admin_params, autocommit=True) as pg:
        pg.execute(f'CREATE DATABASE "{fresh}"')
    try:
        db = connection.settings_dict
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{fresh}"
        env = child_env(DATABASE_URL=url, CONSOLE_DATA_DIR=tmp_path / "restored")
        done = manage(env, "restore", str(tmp_path / "pg.tar.gz"))
        assert "1 stored secrets decrypt" in done.stdout
        with psycopg.connect(**{**params, "dbname": fresh}) as pg:
            for label, n in counts.items():
                assert pg.execute(f'SELECT COUNT(*) FROM "{_table(label)}"').fetchone()[0] == n, label
            blob = pg.execute("SELECT encrypted_private_key FROM nodes_credential").fetchone()[0]
        assert SecretBox(settings.CONSOLE_SECRET_KEY).decrypt(blob) == credential.private_key()
        again = manage(env, "restore", str(tmp_path / "pg.tar.gz"), check=False)
        assert again.returncode != 0 and "not empty" in again.stderr
        manage(env, "restore", "--force", str(tmp_path / "pg.tar.gz"))
    finally:
        with psycopg.connect(**admin_params, autocommit=True) as pg:
            pg.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')

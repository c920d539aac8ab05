"""Backup and restore of a console (``manage.py backup`` / ``manage.py restore``; docs/deployment.md).

A backup is one ``.tar.gz`` file:

- ``manifest.json``: when, which console (version, commit), the database vendor, the applied
  migrations per app, the row count of every table (read in the snapshot itself), the secret key's
  *reference* (the variable or file that holds it) and fingerprint, never the secret;
- ``database.sqlite3`` (SQLite's online backup API: a consistent copy while the console writes) or
  ``database.pgdump`` (``pg_dump`` custom format, taken in the same exported snapshot as the counts);
- ``data/``: the data folder's state that is not in the database: ``instances/`` (the control files of
  the engines on node ``local``, so that a restored console re-adopts them; logs cut to their last
  256 KiB) and ``datasets/`` (benchmark prompt files). Left out: the secret key file, the broker
  spool, beat's schedule, the supervisor's status, collected static files.

Restore refuses a target that holds data (unless ``force``), a secret whose fingerprint differs from
the backup's (unless ``allow_secret_mismatch``: credentials then cannot be decrypted) and a backup of
another database vendor.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import connections

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
PGDUMP_MEMBER = "database.pgdump"
DATA_PREFIX = "data/"
# Folders of the data folder that a backup carries; everything else there is re-created or secret.
DATA_FOLDERS = ("instances", "datasets")
LEFT_OUT = {
    "secret_key": "the secret itself (the manifest names where it is held, and its fingerprint)",
    "broker": "the embedded broker's spool (in-flight messages; the reconciler re-derives its work)",
    "celerybeat-schedule": "beat's schedule state (re-created)",
    "run": "the supervisor's status (re-created by make run)",
    "static": "collected static files (re-created by collectstatic)",
}
LOG_KEEP_BYTES = 256 * 1024
# What "a target that holds data" means: rows an operator made (migrations create built-in alert rules
# and groups, so a migrated empty database is still empty).
OWNED_MODELS = ("nodes.Node", "nodes.Credential", "models_registry.Model", "jobs.Job", "jobs.ApiKey", "auth.User")
SUMMARY_MODELS = ("nodes.Node", "nodes.Credential", "models_registry.Model", "models_registry.ModelVersion",
                  "jobs.Job", "jobs.Instance", "alerting.AlertRule", "alerting.NotificationChannel", "jobs.ApiKey",
                  "jobs.Route", "auth.User")
PREFIX_FILE = "instance_prefix"


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why and what to do."""


# --- the secret --------------------------------------------------------------------------------------


def secret_fingerprint(secret: str) -> str:
    """A short, one-way tag of a secret: equal tags mean the same secret. Not reversible (HMAC-SHA256 with a
    fixed label); 64 bits shown, enough to tell secrets apart, not to help guess one."""
    mac = hmac.new(b"boom-console/secret-fingerprint/v1", secret.encode("utf-8"), hashlib.sha256)
    return "hmac-sha256:" + mac.hexdigest()[:16]


def secret_reference() -> dict:
    """Where this console's secret comes from (settings.py reads it the same way), and its fingerprint."""
    if os.environ.get("CONSOLE_SECRET_KEY"):
        where = {"source": "environment", "variable": "CONSOLE_SECRET_KEY"}
    elif os.environ.get("CONSOLE_SECRET_KEY_FILE"):
        where = {"source": "file", "variable": "CONSOLE_SECRET_KEY_FILE",
                 "path": str(Path(os.environ["CONSOLE_SECRET_KEY_FILE"]).resolve())}
    else:
        where = {"source": "file", "path": str(settings.DATA_DIR / "secret_key")}
    return {**where, "fingerprint": secret_fingerprint(settings.CONSOLE_SECRET_KEY)}


def describe_reference(ref: dict) -> str:
    if ref.get("source") == "environment":
        return f"the environment variable {ref.get('variable')}"
    if ref.get("variable"):
        return f"the file {ref.get('path')} (named by {ref['variable']})"
    return f"the file {ref.get('path')}"


# --- what is in a database ----------------------------------------------------------------------------


def counted_models():
    return [m for m in apps.get_models() if m._meta.managed and not m._meta.proxy and not m._meta.swapped]


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def row_counts(cursor, tables: set[str] | None = None) -> dict[str, int]:
    """The row count of every table of the console's models, read through ``cursor`` (any DB-API cursor, so
    that the counts come from the snapshot being saved). ``tables``: the tables that exist there."""
    counts = {}
    for model in counted_models():
        table = model._meta.db_table
        if tables is not None and table not in tables:
            continue
        cursor.execute(f"SELECT COUNT(*) FROM {quote(table)}")
        counts[model._meta.label] = cursor.fetchone()[0]
    return dict(sorted(counts.items()))


def applied_migrations(cursor) -> dict[str, list[str]]:
    cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, id")
    state: dict[str, list[str]] = {}
    for app, name in cursor.fetchall():
        state.setdefault(app, []).append(name)
    return state


def console_version() -> dict:
    version = {"version": None, "commit": None}
    pyproject = settings.BASE_DIR / "pyproject.toml"
    try:
        match = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
        version["version"] = match and match.group(1)
    except OSError:
        pass
    try:
        done = subprocess.run(["git", "-C", str(settings.BASE_DIR), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5)
        if done.returncode == 0:
            version["commit"] = done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return version


# --- PostgreSQL tools -----------------------------------------------------------------------------------


def _tool_version(path: Path) -> tuple[int, ...]:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    return tuple(int(g) for g in match.groups() if g) if match else ()


def find_pg_tool(name: str, server_major: int | None = None) -> Path:
    """The newest ``name`` (pg_dump, pg_restore) on PATH or under /usr/lib/postgresql/*/bin. pg_dump must be
    at least the server's major version."""
    found = []
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    found.extend(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}")))
    versioned = [(v, p) for p in found if (v := _tool_version(p))]
    if not versioned:
        raise BackupError(f"{name} is not installed (looked on PATH and in /usr/lib/postgresql/*/bin): install the "
                          "PostgreSQL client tools of the server's version")
    version, path = max(versioned, key=lambda item: item[0])
    if server_major and version[0] < server_major:
        raise BackupError(f"{name} {'.'.join(map(str, version))} ({path}) is older than the server "
                          f"(PostgreSQL {server_major}): install the client tools of version {server_major} or newer")
    return path


def pg_params(settings_dict: dict) -> dict:
    """psycopg connection parameters of a Django database entry."""
    params = {"dbname": settings_dict["NAME"], "user": settings_dict.get("USER") or None,
              "password": settings_dict.get("PASSWORD") or None, "host": settings_dict.get("HOST") or None,
              "port": settings_dict.get("PORT") or None}
    options = {k: v for k, v in (settings_dict.get("OPTIONS") or {}).items()
               if k not in ("pool", "server_side_binding", "isolation_level", "assume_role", "cursor_factory")}
    params.update(options)
    return {k: v for k, v in params.items() if v is not None}


def pg_env(params: dict) -> dict:
    """The environment for pg_dump/pg_restore: credentials in PG* variables, never on a command line."""
    env = dict(os.environ)
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE",
             "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
             "connect_timeout": "PGCONNECT_TIMEOUT", "options": "PGOPTIONS"}
    for key, value in params.items():
        if key in names:
            env[names[key]] = str(value)
    return env


# --- backup -----------------------------------------------------------------------------------------


@dataclass
class BackupResult:
    path: Path
    manifest: dict
    seconds: float


def backup_path(dest: str | Path) -> Path:
    folder = str(dest).endswith(("/", os.sep))
    dest = Path(dest)
    if folder or dest.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return (dest / f"boom-console-backup-{stamp}.tar.gz").resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest.resolve()


def create_backup(dest: str | Path, *, using: str = "default") -> BackupResult:
    started = time.monotonic()
    target = backup_path(dest)
    conn = connections[using]
    vendor = conn.vendor
    if vendor not in ("sqlite", "postgresql"):
        raise BackupError(f"backups support SQLite and PostgreSQL, not {vendor}")
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "console": console_version(),
        "database": {"vendor": vendor},
        "secret_key": secret_reference(),
        "instance_prefix": settings.CONSOLE_INSTANCE_PREFIX,
        "data_dir": str(settings.DATA_DIR),
    }
    with tempfile.TemporaryDirectory(prefix="boom-backup-", dir=target.parent) as work:
        work = Path(work)
        if vendor == "sqlite":
            member, db_file = SQLITE_MEMBER, work / SQLITE_MEMBER
            manifest["database"].update(_backup_sqlite(conn.settings_dict, db_file))
        else:
            member, db_file = PGDUMP_MEMBER, work / PGDUMP_MEMBER
            manifest["database"].update(_backup_postgresql(conn.settings_dict, db_file))
        manifest["database"].update(file=member, bytes=db_file.stat().st_size, sha256=_sha256(db_file))
        data_files = _data_files()
        manifest["data"] = {"included": sorted({name.split("/", 1)[0] for name, _ in data_files}),
                            "files": len(data_files), "left_out": _left_out()}
        partial = target.with_name(target.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
            tar.add(db_file, arcname=member, recursive=False, filter=_private)
            for name, source in data_files:
                _add_data_file(tar, name, source)
        os.replace(partial, target)
    return BackupResult(target, manifest, time.monotonic() - started)


def _backup_sqlite(settings_dict: dict, out: Path) -> dict:
    """SQLite's online backup API: one step, under a read transaction, so writers (WAL) go on meanwhile and
    the copy is the database at one instant."""
    source = sqlite3.connect(str(settings_dict["NAME"]), timeout=30)
    copy = sqlite3.connect(str(out))
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        check = copy.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the copied database fails SQLite's check: {check}")
        cursor = copy.cursor()
        tables = {r[0] for r in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {"migrations": applied_migrations(cursor), "row_counts": row_counts(cursor, tables),
                "sqlite_version": sqlite3.sqlite_version}
    finally:
        copy.close()
        source.close()


def _backup_postgresql(settings_dict: dict, out: Path) -> dict:
    """pg_dump (custom format) in a snapshot exported by a REPEATABLE READ transaction that also reads the
    counts and the migrations: what the manifest says is what the dump holds."""
    import psycopg

    params = pg_params(settings_dict)
    with psycopg.connect(**params) as pg:
        pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        pg.read_only = True
        server_major = pg.info.server_version // 10000
        tool = find_pg_tool("pg_dump", server_major)
        with pg.transaction(), pg.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            tables = {r[0] for r in cursor.fetchall()}
            info = {"migrations": applied_migrations(cursor), "row_counts": row_counts(cursor, tables),
                    "server_version": pg.info.server_version, "name": params.get("dbname"),
                    "pg_dump": str(tool)}
            done = subprocess.run([str(tool), "--format=custom", f"--snapshot={snapshot}", "--no-password",
                                   "--file", str(out)], env=pg_env(params), capture_output=True, text=True)
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {done.stderr.strip()[-2000:]}")
    return info


def _data_files() -> list[tuple[str, Path]]:
    files = []
    for folder in DATA_FOLDERS:
        root = settings.DATA_DIR / folder
        if not root.is_dir() or root.is_symlink():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not path.is_file() or path.name == "lock" or path.name.endswith(".tmp"):
                continue
            files.append((path.relative_to(settings.DATA_DIR).as_posix(), path))
    return files


def _left_out() -> dict:
    present = {p.name for p in settings.DATA_DIR.iterdir()} if settings.DATA_DIR.is_dir() else set()
    db = Path(str(settings.DATABASES["default"].get("NAME", "")))
    left = {name: why for name, why in LEFT_OUT.items() if name in present}
    for name in sorted(present - set(DATA_FOLDERS) - set(LEFT_OUT)):
        if db.parent == settings.DATA_DIR and name.startswith(db.name):
            continue  # the database itself, saved above
        left[name] = "not part of a backup"
    return left


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _add_data_file(tar: tarfile.TarFile, name: str, source: Path) -> None:
    try:
        with open(source, "rb") as handle:
            if source.name in ("log", "log.1"):
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(0, size - LOG_KEEP_BYTES))
            data = handle.read()
            mode = os.fstat(handle.fileno()).st_mode & 0o777
    except OSError:
        return  # an engine's file went away meanwhile
    _add_bytes(tar, DATA_PREFIX + name, data, mode)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- restore ----------------------------------------------------------------------------------------


@dataclass
class RestoreResult:
    manifest: dict
    counts: dict[str, int]
    mismatched: dict[str, tuple[int, int]]
    decrypted: int
    undecryptable: list[str]
    prefix_note: str
    seconds: float


def read_manifest(tar: tarfile.TarFile) -> dict:
    try:
        manifest = json.load(tar.extractfile(MANIFEST))
    except (KeyError, ValueError, AttributeError):
        raise BackupError("not a console backup: it has no readable manifest.json")
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r} is not one this console reads ({FORMAT})")
    return manifest


def target_contents(using: str = "default") -> dict[str, int]:
    """Rows an operator made in the target database (empty dict: an empty target)."""
    conn = connections[using]
    tables = set(conn.introspection.table_names())
    held = {}
    with conn.cursor() as cursor:
        for label in OWNED_MODELS:
            model = apps.get_model(label)
            if model._meta.db_table in tables:
                cursor.execute(f"SELECT COUNT(*) FROM {quote(model._meta.db_table)}")
                if n := cursor.fetchone()[0]:
                    held[label] = n
    instances = settings.DATA_DIR / "instances"
    if instances.is_dir() and any(instances.iterdir()):
        held["data folder instances/"] = sum(1 for _ in instances.iterdir())
    return held


def restore_backup(path: str | Path, *, force: bool = False, allow_secret_mismatch: bool = False,
                   using: str = "default", log=print) -> RestoreResult:
    started = time.monotonic()
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    try:
        tar = tarfile.open(path, mode="r:*")
    except tarfile.TarError as exc:
        raise BackupError(f"{path} is not a console backup: {exc}")
    with tar:
        manifest = read_manifest(tar)
        _check_secret(manifest, allow_secret_mismatch)
        conn = connections[using]
        vendor = manifest["database"]["vendor"]
        if vendor != conn.vendor:
            raise BackupError(f"this backup holds a {vendor} database and this console is configured for "
                              f"{conn.vendor} (DATABASE_URL): restore it into a console of the same kind")
        held = target_contents(using)
        if held and not force:
            what = ", ".join(f"{n} {label}" for label, n in held.items())
            raise BackupError(f"the target is not empty ({what}): restore into an empty data folder and database, "
                              "or pass --force to replace what is there")
        with tempfile.TemporaryDirectory(prefix="boom-restore-") as work:
            work = Path(work)
            member = manifest["database"]["file"]
            db_file = _extract(tar, member, work)
            if _sha256(db_file) != manifest["database"]["sha256"]:
                raise BackupError(f"{member} in the backup is damaged (its SHA-256 differs from the manifest's)")
            if vendor == "sqlite":
                _restore_sqlite(db_file, conn)
            else:
                _restore_postgresql(db_file, conn)
            log(f"Database restored from {member} ({manifest['database']['bytes']} bytes).")
            _restore_data(tar, force)
        prefix_note = _keep_instance_prefix(manifest)
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0, database=using)
    with connections[using].cursor() as cursor:
        counts = row_counts(cursor, set(connections[using].introspection.table_names()))
    expected = manifest["database"]["row_counts"]
    mismatched = {label: (n, counts.get(label)) for label, n in expected.items() if counts.get(label) != n}
    decrypted, undecryptable = _check_decryption()
    return RestoreResult(manifest, counts, mismatched, decrypted, undecryptable, prefix_note,
                         time.monotonic() - started)


def _check_secret(manifest: dict, allow_mismatch: bool) -> None:
    ref = manifest.get("secret_key") or {}
    theirs = ref.get("fingerprint")
    ours = {secret_fingerprint(s) for s in [settings.CONSOLE_SECRET_KEY, *settings.CONSOLE_OLD_SECRET_KEYS]}
    if theirs in ours or allow_mismatch:
        return
    current = secret_reference()
    raise BackupError(
        f"secret key fingerprint mismatch: the backup was made with the secret {theirs} (held in "
        f"{describe_reference(ref)} on that console); this console's secret, from {describe_reference(current)}, is "
        f"{current['fingerprint']}. Set CONSOLE_SECRET_KEY (or CONSOLE_SECRET_KEY_FILE) to the backup's secret, "
        "or pass --allow-secret-mismatch to restore without the SSH credentials and notification secrets "
        "(they will have to be entered again)")


def _extract(tar: tarfile.TarFile, member: str, into: Path) -> Path:
    if member not in (SQLITE_MEMBER, PGDUMP_MEMBER):
        raise BackupError(f"unexpected database member {member!r} in the manifest")
    source = tar.extractfile(member)
    if source is None:
        raise BackupError(f"the backup has no {member}")
    out = into / member
    with open(out, "wb") as handle:
        shutil.copyfileobj(source, handle, 1 << 20)
    return out


def _restore_sqlite(db_file: Path, conn) -> None:
    conn.close()
    target = Path(str(conn.settings_dict["NAME"]))
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(str(db_file))
    dest = sqlite3.connect(str(target), timeout=30)
    try:
        source.backup(dest)  # page by page, under the target's write lock: replaces whatever was there
        dest.execute("PRAGMA journal_mode=WAL")
    finally:
        dest.close()
        source.close()


def _restore_postgresql(dump: Path, conn) -> None:
    import psycopg

    conn.close()
    params = pg_params(conn.settings_dict)
    with psycopg.connect(**params, autocommit=True) as pg:
        server_major = pg.info.server_version // 10000
        tables = [r[0] for r in pg.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()]
        if tables:  # an empty but migrated database, or --force: the dump brings every table back
            with pg.transaction():
                for table in tables:
                    pg.execute(f"DROP TABLE IF EXISTS {quote(table)} CASCADE")
    tool = find_pg_tool("pg_restore", server_major)
    done = subprocess.run([str(tool), "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction",
                           "--no-password", "--dbname", params["dbname"], str(dump)],
                          env=pg_env(params), capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()[-2000:]}")


def _restore_data(tar: tarfile.TarFile, force: bool) -> None:
    root = settings.DATA_DIR.resolve()
    for member in tar.getmembers():
        if not member.name.startswith(DATA_PREFIX) or not member.isfile():
            continue
        relative = member.name[len(DATA_PREFIX):]
        if relative.split("/", 1)[0] not in DATA_FOLDERS:
            continue
        target = (root / relative).resolve()
        if root not in target.parents:
            raise BackupError(f"unsafe path in the backup: {member.name}")
        if target.exists() and not force:
            continue
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tar.extractfile(member) as source, open(target, "wb") as handle:
            shutil.copyfileobj(source, handle)
        os.chmod(target, member.mode & 0o777 or 0o600)


def _keep_instance_prefix(manifest: dict) -> str:
    """Engines carry the console's instance prefix in their key: a console restored into another folder keeps
    the backup's prefix (a file in the data folder, read by settings.py), so it finds and re-adopts them."""
    prefix = manifest.get("instance_prefix")
    if not prefix or not re.fullmatch(r"[A-Za-z0-9]+", prefix):
        return ""
    if os.environ.get("CONSOLE_INSTANCE_PREFIX"):
        if prefix != os.environ["CONSOLE_INSTANCE_PREFIX"]:
            return (f"CONSOLE_INSTANCE_PREFIX is set to {os.environ['CONSOLE_INSTANCE_PREFIX']} but the backup's "
                    f"engines carry {prefix}: unset it (or set it to {prefix}) for them to be re-adopted")
        return ""
    path = settings.DATA_DIR / PREFIX_FILE
    if prefix != settings.CONSOLE_INSTANCE_PREFIX or path.exists():
        path.write_text(prefix + "\n")
        return f"instance prefix {prefix} kept in {path}: running engines are re-adopted"
    return ""


def _check_decryption() -> tuple[int, list[str]]:
    from nodes.crypto import SecretBoxError, default_box

    box, ok, bad = default_box(), 0, []
    for label, field in (("nodes.Credential", "encrypted_private_key"),
                         ("alerting.NotificationChannel", "encrypted_secret")):
        model = apps.get_model(label)
        for pk, blob in model.objects.exclude(**{field: ""}).values_list("pk", field):
            try:
                box.decrypt(blob)
                ok += 1
            except SecretBoxError:
                bad.append(f"{label} {pk}")
    return ok, bad

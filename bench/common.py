"""Shared helpers of the benchmarks: a throw-away console database, machine description, report file."""

import os
import platform
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "benchmarks.md"


def setup_django(database_url: str | None = None) -> Path:
    """Point the console at a fresh data dir (and SQLite unless a URL is given), migrate, return the dir."""
    data_dir = Path(tempfile.mkdtemp(prefix="boom-bench-"))
    os.environ["CONSOLE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("CONSOLE_SECRET_KEY", "bench-secret")
    os.environ["DJANGO_SETTINGS_MODULE"] = "console.settings"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return data_dir


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"model name\s*:\s*(.+)", text)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def timed(fn, repeat: int = 1) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def median(values):
    return statistics.median(values) if values else float("nan")


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``## name`` of docs/benchmarks.md."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    text = REPORT.read_text() if REPORT.exists() else (
        "# Benchmarks\n\nFigures written by `make bench` (each section by its own script in `bench/`). "
        "Every figure is compared with a baseline measured in the same run, because these machines are noisy.\n"
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"## {name}\n\n_Measured {stamp} on {machine()}._\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    REPORT.write_text(text)

"""Private data files (issue 13, finding 4): the data folder is 0700 and its files 0600, also when an older
version left them readable to every local user."""

import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_after_start_up_and_migrate_the_data_folder_is_0700_and_the_sqlite_files_0600(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    old_db = data / "console.sqlite3"
    old_db.touch()
    old_db.chmod(0o644)
    # No CONSOLE_SECRET_KEY: the secret file is created in the data folder, and must be private too.
    drop = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CONSOLE_SECRET_KEY")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["CONSOLE_DATA_DIR"] = str(data)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True,
                   timeout=300)
    assert mode(data) == 0o700
    files = [p for p in data.iterdir() if p.is_file()]
    assert {"console.sqlite3", "secret_key"} <= {p.name for p in files}
    for path in files:
        assert mode(path) == 0o600, (path, oct(mode(path)))
    for path in data.iterdir():
        if path.is_dir():
            assert mode(path) == 0o700, (path, oct(mode(path)))

#!/usr/bin/env bash
# The whole test suite. Uses PostgreSQL and Redis when they answer on 127.0.0.1 (always in CI,
# where a missing service fails the run); otherwise SQLite and the filesystem broker, with a notice.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ci=${CI:-false}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if answers 5432; then
  export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/boom_console}
  echo "Database tests: PostgreSQL ($DATABASE_URL)"
  $PY - <<'PYEOF' || true
import os, psycopg
from urllib.parse import urlparse
url = urlparse(os.environ["DATABASE_URL"])
name = url.path.lstrip("/")
with psycopg.connect(os.environ["DATABASE_URL"].replace("/" + name, "/postgres"), autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        conn.execute(f'CREATE DATABASE "{name}"')
PYEOF
elif [ "$ci" = true ]; then
  echo "PostgreSQL does not answer on 127.0.0.1:5432 and CI=true: failing." >&2; exit 1
else
  unset DATABASE_URL
  echo "NOTICE: PostgreSQL does not answer on 127.0.0.1:5432; database tests run on SQLite."
fi
if answers 6379; then
  export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/9}
  echo "Broker tests: Redis ($TEST_REDIS_URL)"
elif [ "$ci" = true ]; then
  echo "Redis does not answer on 127.0.0.1:6379 and CI=true: failing." >&2; exit 1
else
  unset TEST_REDIS_URL
  echo "NOTICE: Redis does not answer on 127.0.0.1:6379; broker tests use the filesystem broker."
fi

export CONSOLE_DATA_DIR=${CONSOLE_DATA_DIR:-$(mktemp -d /tmp/boom-test-data.XXXXXX)}
# Engines started by the tests listen in a port block of their own, away from a console running beside them.
export CONSOLE_INSTANCE_PORT_MIN=${CONSOLE_INSTANCE_PORT_MIN:-$((20000 + (RANDOM % 12) * 1000))}
export CONSOLE_INSTANCE_PORT_MAX=${CONSOLE_INSTANCE_PORT_MAX:-$((CONSOLE_INSTANCE_PORT_MIN + 999))}
export CONSOLE_SECRET_KEY=${CONSOLE_SECRET_KEY:-test-secret-not-for-production}
unset CELERY_BROKER_URL REDIS_URL

.venv/bin/ruff check .
# Import contracts (pyproject.toml, [tool.importlinter]): layers, a foundation that imports no app, no cycles.
.venv/bin/lint-imports --no-cache --no-logo
# Shell: every tracked *.sh, and every tracked file without an extension whose first line is a sh or bash shebang.
shell_scripts() {
  local f
  git ls-files -z | while IFS= read -r -d '' f; do
    case ${f##*/} in
      *.sh) printf '%s\0' "$f" ;;
      ?*.*) ;;
      *) if head -n1 -- "$f" 2>/dev/null | grep -qE '^#!.*[/ ](ba|da)?sh( |$)'; then printf '%s\0' "$f"; fi ;;
    esac
  done
}
if command -v shellcheck >/dev/null; then
  mapfile -d '' sh_files < <(shell_scripts)
  shellcheck -- "${sh_files[@]}"
  echo "shellcheck: ${#sh_files[@]} scripts clean"
elif [ "$ci" = true ]; then
  echo "shellcheck is not installed and CI=true: failing (scripts/ci-services.sh installs it)." >&2; exit 1
else
  echo "NOTICE: shellcheck is not installed (apt-get install shellcheck); shell scripts are not checked."
fi
$PY manage.py makemigrations --check --dry-run >/dev/null || { echo "Missing migrations." >&2; exit 1; }
$PY manage.py spectacular --validate --fail-on-warn --file /dev/null
exec .venv/bin/pytest "$@"

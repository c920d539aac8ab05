#!/usr/bin/env bash
# Install and start what the test suite talks to, on a Debian 12 CI machine, as root.
# Called by .ci/run before `make test`. Idempotent: whatever is already installed or running is
# left alone. No systemd there (apt starts nothing), so services are started by hand.
#
#   openssh-server  sshd for the SSH transport/executor tests (tests/sshd.py); needs /run/sshd
#   chromium        browser tests (Playwright with executable_path=/usr/bin/chromium)
#   gettext         compilemessages (msgfmt)
#   prometheus      promtool, to check our /metrics exposition
#   postgresql      database tests: the role in TEST_DATABASE_URL (default postgres) needs CREATEDB
#   redis-server    broker and channel-layer tests
#   slapd           OpenLDAP for the directory sign-in tests (tests/ldapd.py starts its own; none runs here),
#                   with libldap2-dev/libsasl2-dev for building python-ldap where no wheel fits
#   nodejs, npm     the OpenID provider of the OIDC sign-in tests (tests/oidcd.py): the npm package oidc-provider,
#                   pinned there, installed below into ~/.cache/boom-console/oidc-provider
#   prometheus-alertmanager  Alertmanager for the alertmanager-api channel tests (tests/alertmanager.py starts
#                   its own with a config of its own; none runs here)
#   and shellcheck, with which `make test` checks every tracked shell script
set -euo pipefail

log() { echo "ci-services: $*"; }
did=()

# --- packages -----------------------------------------------------------------------------------
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v chromium >/dev/null || missing+=(chromium)
command -v msgfmt >/dev/null || missing+=(gettext)
command -v promtool >/dev/null || missing+=(prometheus)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v shellcheck >/dev/null || missing+=(shellcheck)
[ -x /usr/sbin/slapd ] || missing+=(slapd)
[ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
command -v ldapsearch >/dev/null || missing+=(ldap-utils)
[ -f /usr/include/ldap.h ] || missing+=(libldap2-dev)
[ -f /usr/include/sasl/sasl.h ] || missing+=(libsasl2-dev)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Update the package lists only when an install fails: they are usually fresh enough.
  if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
    log "install failed; running apt-get update and retrying"
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
  fi
  did+=("installed ${missing[*]}")
else
  log "packages: all present"
fi

# The OpenID provider of the OIDC tests (the version tests/oidcd.py pins; it installs it itself when missing).
oidc_version=$(sed -n 's/^OIDC_PROVIDER_VERSION = "\(.*\)"$/\1/p' "$(dirname "$0")/../tests/oidcd.py")
oidc_dir=${CONSOLE_TEST_OIDC_PROVIDER_DIR:-$HOME/.cache/boom-console/oidc-provider}
if [ -n "$oidc_version" ] && ! grep -q "\"version\": \"$oidc_version\"" "$oidc_dir/node_modules/oidc-provider/package.json" 2>/dev/null; then
  mkdir -p "$oidc_dir"
  [ -f "$oidc_dir/package.json" ] || echo '{"name": "boom-console-oidc-provider", "private": true}' > "$oidc_dir/package.json"
  (cd "$oidc_dir" && npm install --no-audit --no-fund "oidc-provider@$oidc_version")
  did+=("installed oidc-provider@$oidc_version into $oidc_dir")
fi

# sshd refuses to start without its privilege-separation directory.
if [ ! -d /run/sshd ]; then
  mkdir -p /run/sshd && chmod 0755 /run/sshd
  did+=("created /run/sshd")
fi

wait_for() { # wait_for <what> <seconds> <command...>
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq 1 $((seconds * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  log "$what did not come up within ${seconds}s" >&2
  return 1
}

# --- PostgreSQL ---------------------------------------------------------------------------------
if pg_isready -q -h 127.0.0.1; then
  log "PostgreSQL: already answering"
else
  version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n 1)
  log "PostgreSQL: starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for "PostgreSQL" 30 pg_isready -q -h 127.0.0.1
  did+=("started PostgreSQL $version")
fi

# The role the tests connect as (scripts/test.sh: TEST_DATABASE_URL, default postgres@127.0.0.1).
url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/boom_console}
re='^postgres(ql)?://([A-Za-z0-9_.-]+)(:([^@]*))?@([^:/?]+)(:([0-9]+))?/'
if [[ $url =~ $re ]]; then
  role=${BASH_REMATCH[2]}
  [ -n "${BASH_REMATCH[4]}" ] && export PGPASSWORD="${BASH_REMATCH[4]}"
  pghost=${BASH_REMATCH[5]}
  pgport=${BASH_REMATCH[7]:-5432}
else
  log "cannot read the role from TEST_DATABASE_URL (expected postgres://user[:pass]@host[:port]/db)" >&2
  exit 1
fi
as_superuser() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qAt "$@"; }
can_create_db() {
  [ "$(psql -h "$pghost" -p "$pgport" -U "$role" -d postgres -qAt \
        -c 'select rolcreatedb or rolsuper from pg_roles where rolname = current_user' 2>/dev/null)" = t ]
}
if ! psql -h "$pghost" -p "$pgport" -U "$role" -d postgres -qAt -c 'select 1' >/dev/null 2>&1; then
  if [ "$(as_superuser -c "select count(*) from pg_roles where rolname = '$role'")" = 0 ]; then
    as_superuser -c "create role \"$role\" login createdb"
    did+=("created PostgreSQL role $role")
  fi
  if ! psql -h "$pghost" -p "$pgport" -U "$role" -d postgres -qAt -c 'select 1' >/dev/null 2>&1 \
     && [ "${CI:-}" = true ] && [ -z "${PGPASSWORD:-}" ]; then
    # Debian's default pg_hba.conf asks loopback clients for a password the tests do not have.
    # On a throwaway CI machine, trust loopback connections instead.
    hba=$(as_superuser -c 'show hba_file')
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    as_superuser -c 'select pg_reload_conf()' >/dev/null
    sleep 0.5
    did+=("trusted loopback connections in $hba")
  fi
  psql -h "$pghost" -p "$pgport" -U "$role" -d postgres -qAt -c 'select 1' >/dev/null || {
    log "PostgreSQL answers but refuses role $role on $pghost:$pgport" >&2
    exit 1
  }
fi
if ! can_create_db; then
  as_superuser -c "alter role \"$role\" createdb"
  did+=("granted CREATEDB to $role")
fi
log "PostgreSQL: role $role can connect and create databases"

# --- Redis --------------------------------------------------------------------------------------
if [ "$(redis-cli -h 127.0.0.1 ping 2>/dev/null)" = PONG ]; then
  log "Redis: already answering"
else
  log "Redis: starting"
  mkdir -p /var/lib/redis /var/log/redis
  # "-::1": bind IPv6 loopback when the machine has it, without failing when it has not.
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  # shellcheck disable=SC2016  # the inner bash expands it
  wait_for "Redis" 30 bash -c '[ "$(redis-cli -h 127.0.0.1 ping)" = PONG ]'
  did+=("started Redis")
fi

if [ ${#did[@]} -gt 0 ]; then
  log "done: $(IFS=';'; echo "${did[*]}")"
else
  log "done: nothing to do"
fi

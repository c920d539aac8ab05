"""The shell side of the executors: one launcher script for local and SSH nodes, and the supervisor it starts.

``LAUNCHER_SH`` is sent to ``bash -s`` on the node (locally through ``subprocess``, remotely on the
SSH channel's stdin), followed by one call::

    boom_main <<'BOOM_PAYLOAD'
    <base64 of NUL-separated fields: operation, then its arguments>
    BOOM_PAYLOAD

Nothing a user typed ever reaches a shell parser: the command line is the fixed ``bash -s``, the
heredoc body is base64 (it cannot contain the delimiter or any shell syntax), and the decoded fields
are read into bash arrays with ``read -d ''`` and used only as quoted expansions (``"${argv[@]}"``).
Environment values therefore never appear on any process's command line either (they may carry
tokens), and the engine's argv reaches ``execve`` word for word.

Requirements on the node: bash, coreutils (``base64``, ``date``, ``sleep`` with fractions, ``mv``,
``rm``, ``mkdir``, ``tail``, ``tr``), ``grep``, ``awk``, util-linux ``setsid`` (``flock`` optional) and
``/proc``. No Python.

Per-instance directory ``<base>/<instance_key>/`` (mode 0700):

=================  ==========================================================================
``pid``            the engine's pid, which is also its session and process-group id
``supervisor_pid`` the supervising bash that waits for the engine and records its exit
``generation``     run counter, incremented by each start
``started_at``     epoch seconds (node clock) of the start
``spec``           NUL-separated key, generation, cwd, env count, env pairs, argv (mode 0600)
``log``            the engine's stdout and stderr, plus one ``[boom]`` line when it ends
``log.1``          the previous run's ``log``, moved aside by the next start
``exit_status``    three lines once the engine ended: exit code (128+N for signal N), ended_at,
                   OOM hint (``1``, ``0`` or empty when unknown)
``supervise.sh``   ``SUPERVISOR_SH``, rewritten at every start
=================  ==========================================================================

The engine runs as ``setsid -- argv...`` from a subshell of the supervisor, so its pid is the one
``$!`` gives (``setsid`` does not fork when the caller is not a group leader) and it leads its own
session and process group: ``stop`` signals the whole group. It carries ``BOOM_INSTANCE`` and
``BOOM_GENERATION`` in its environment; "ours" means ``/proc/<pid>/environ`` holds both, which a
recycled pid does not. Its children inherit the marker, so ``stop`` also finds those that left the
group (``grep -z`` over ``/proc/*/environ``).
"""

from __future__ import annotations

PAYLOAD_DELIMITER = "BOOM_PAYLOAD"
OUTPUT_MARKER = "__BOOM_OUTPUT__"

# Exit codes of the launcher (mapped to exceptions in base.py).
EXIT_INVALID = 2
EXIT_ALREADY_RUNNING = 3
EXIT_LAUNCH_FAILED = 4
EXIT_STILL_RUNNING = 5

SUPERVISOR_SH = r"""# BooM Console supervisor: starts one engine, records its pid, waits, records its exit status.
# Usage: bash supervise.sh <instance dir>   (started by the launcher under setsid, fds on /dev/null)
trap '' HUP            # nohup semantics, inherited by the engine
dir=$1
cd -- "$dir" || exit 1
spec=()
while IFS= read -r -d '' field; do spec+=("$field"); done < "$dir/spec"
key=${spec[0]}
gen=${spec[1]}
cwd=${spec[2]}
nenv=${spec[3]}
envs=("${spec[@]:4:nenv}")
argv=("${spec[@]:4+nenv}")

boom_now() {
  local t
  t=$(date +%s.%N 2>/dev/null)
  case $t in ''|*N*) t=$(date +%s) ;; esac
  printf '%s' "$t"
}

# Best-effort OOM evidence: the kernel's OOM-kill counters (cgroup v2, cgroup v1 memory, global).
boom_oom_count() {
  local line cg="" path k v total=""
  while IFS= read -r line; do
    case $line in
      0::*) [ -z "$cg" ] && cg="unified:${line#0::}" ;;
      *:memory:*) cg="memory:${line#*:memory:}" ;;
    esac
  done 2>/dev/null < /proc/self/cgroup
  case $cg in
    unified:*) path="/sys/fs/cgroup${cg#unified:}/memory.events" ;;
    memory:*) path="/sys/fs/cgroup/memory${cg#memory:}/memory.oom_control" ;;
    *) path="" ;;
  esac
  if [ -n "$path" ] && [ -r "$path" ]; then
    while read -r k v; do [ "$k" = oom_kill ] && total="c$v"; done < "$path"
  fi
  if [ -r /proc/vmstat ]; then
    while read -r k v; do [ "$k" = oom_kill ] && total="$total/g$v"; done < /proc/vmstat
  fi
  printf '%s' "$total"
}

printf '%s\n' "$$" > supervisor_pid.tmp && mv -f supervisor_pid.tmp supervisor_pid
(
  for kv in "${envs[@]}"; do export "$kv"; done
  export BOOM_INSTANCE="$key" BOOM_GENERATION="$gen"
  if [ -n "$cwd" ]; then
    cd -- "$cwd" || { printf '[boom] working directory not found: %s\n' "$cwd"; exit 1; }
  fi
  if ! command -v -- "${argv[0]}" >/dev/null 2>&1; then
    printf '[boom] command not found: %s\n' "${argv[0]}"
    exit 127
  fi
  exec setsid -- "${argv[@]}"
) </dev/null >>"$dir/log" 2>&1 &
child=$!
printf '%s\n' "$child" > pid.tmp && mv -f pid.tmp pid
oom_before=$(boom_oom_count)  # after the pid: start() waits for that file
wait "$child"
rc=$?
ended=$(boom_now)
oom=0
if [ "$rc" = 137 ]; then
  oom_after=$(boom_oom_count)
  if [ -z "$oom_before" ] || [ -z "$oom_after" ]; then oom=""
  elif [ "$oom_before" != "$oom_after" ]; then oom=1
  fi
fi
how="exit status $rc"
if [ "$rc" -gt 128 ]; then how="exit status $rc (signal $((rc - 128)))"; fi
[ "$oom" = 1 ] && how="$how; the kernel OOM killer ran meanwhile"
# A newer start owns the directory now: leave its files alone.
current=""
{ IFS= read -r current < generation; } 2>/dev/null
if [ "$current" = "$gen" ]; then
  printf '[boom] process %s ended at %s: %s\n' "$child" "$(date '+%Y-%m-%d %H:%M:%S %z')" "$how" >> "$dir/log"
  printf '%s\n%s\n%s\n' "$rc" "$ended" "$oom" > exit_status.tmp && mv -f exit_status.tmp exit_status
fi
"""

_LAUNCHER_TEMPLATE = r"""# BooM Console launcher (jobs/executors/launcher_sh.py). Read by `bash -s`; see that module.
# No `set -u`: bash before 4.4 (CentOS 7, EulerOS) calls an empty "${array[@]}" unbound.
# No global umask either: the engine inherits ours. The instance directory is made 0700 instead.
unset BOOM_INSTANCE BOOM_GENERATION

boom_die() { local code=$1; shift; printf 'boom: %s\n' "$*" >&2; exit "$code"; }

boom_ms() {  # milliseconds since the epoch
  if [ -n "${EPOCHREALTIME:-}" ]; then
    local t=${EPOCHREALTIME//[!0-9]/}
    printf '%s' "$(( 10#$t / 1000 ))"
  else
    local t
    t=$(date +%s%3N 2>/dev/null)
    case $t in *N*|'') t=$(( $(date +%s) * 1000 )) ;; esac
    printf '%s' "$t"
  fi
}

boom_now() {
  local t
  t=$(date +%s.%N 2>/dev/null)
  case $t in ''|*N*) t=$(date +%s) ;; esac
  printf '%s' "$t"
}

boom_read() {  # first line of a file, empty when missing
  local v=""
  { IFS= read -r v < "$1"; } 2>/dev/null
  printf '%s' "$v"
}

boom_check_key() {
  case $1 in
    ''|.*|*[!A-Za-z0-9_.-]*) boom_die __EXIT_INVALID__ "invalid instance key" ;;
  esac
  [ "${#1}" -le 80 ] || boom_die __EXIT_INVALID__ "invalid instance key"
}

boom_dir() {  # <base> <key>: sets BOOM_DIR
  local base=$1
  case $base in
    '~'|'~/'*) [ -n "${HOME:-}" ] || boom_die __EXIT_INVALID__ "HOME is not set on this node" ;;
  esac
  case $base in
    '~') base=$HOME ;;
    '~/'*) base=$HOME/${base:2} ;;
    /*) ;;
    *) boom_die __EXIT_INVALID__ "the instance base directory must be absolute or start with ~/" ;;
  esac
  boom_check_key "$2"
  BOOM_DIR=${base%/}/$2
}

boom_lock() {  # <dir>: serialise start, stop and cleanup of one instance (fd 9, released at exit)
  [ -d "$1" ] || return 0
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$1/lock" || boom_die __EXIT_LAUNCH_FAILED__ "cannot open the lock file in $1"
  flock -w 10 9 || boom_die __EXIT_LAUNCH_FAILED__ "another operation on this instance holds its lock"
}

boom_pid_alive() {  # a live process, not a zombie
  local st=""
  case ${1:-} in ''|*[!0-9]*) return 1 ;; esac
  { IFS= read -r st < "/proc/$1/stat"; } 2>/dev/null || return 1
  st=${st##*) }
  case ${st%% *} in Z|X|x|'') return 1 ;; esac
  return 0
}

boom_is_ours() {  # <pid> <key> <generation>: the process carries this run's marker
  local kv k=0 g=0
  [ -n "${3:-}" ] || return 1
  while IFS= read -r -d '' kv; do
    case $kv in
      "BOOM_INSTANCE=$2") k=1 ;;
      "BOOM_GENERATION=$3") g=1 ;;
    esac
  done 2>/dev/null < "/proc/$1/environ"
  [ "$k$g" = 11 ]
}

boom_marked_pids() {  # <key>: live processes carrying BOOM_INSTANCE=<key> (any generation)
  local f p
  for f in $(grep -lsxzF -e "BOOM_INSTANCE=$1" /proc/[0-9]*/environ 2>/dev/null); do
    p=${f#/proc/}
    p=${p%/environ}
    [ "$p" = "$$" ] && continue
    boom_pid_alive "$p" && printf '%s\n' "$p"
  done
}

boom_supervisor_alive() {  # <dir>: the supervisor of the last start still runs
  local sp cmd=""
  sp=$(boom_read "$1/supervisor_pid")
  boom_pid_alive "$sp" || return 1
  cmd=$( { tr '\0' ' ' < "/proc/$sp/cmdline"; } 2>/dev/null )
  case $cmd in *"$1/supervise.sh"*) return 0 ;; esac
  return 1
}

boom_print_status() {  # <dir> <key>
  local dir=$1 key=$2 pid gen alive=0 ours=0 es=() line
  pid=$(boom_read "$dir/pid")
  gen=$(boom_read "$dir/generation")
  if boom_pid_alive "$pid"; then
    alive=1
    boom_is_ours "$pid" "$key" "$gen" && ours=1
  fi
  if [ -r "$dir/exit_status" ]; then
    while IFS= read -r line; do es+=("$line"); done < "$dir/exit_status"
  fi
  printf '__BOOM_OUTPUT__\n'
  printf 'exists=%s\n' "$([ -d "$dir" ] && echo 1 || echo 0)"
  printf 'workdir=%s\n' "$dir"
  printf 'pid=%s\n' "$pid"
  printf 'pid_alive=%s\n' "$alive"
  printf 'ours=%s\n' "$ours"
  printf 'generation=%s\n' "$gen"
  printf 'started_at=%s\n' "$(boom_read "$dir/started_at")"
  printf 'exit_code=%s\n' "${es[0]:-}"
  printf 'ended_at=%s\n' "${es[1]:-}"
  printf 'oom=%s\n' "${es[2]:-}"
}

boom_start() {  # base key cwd settle_ms nenv env... argv...
  local base=$1 key=$2 cwd=$3 settle_ms=$4 nenv=$5
  shift 5
  local envs=("${@:1:nenv}")
  shift "$nenv"
  local argv=("$@") kv dir pid gen n deadline leftovers
  [ "${#argv[@]}" -gt 0 ] || boom_die __EXIT_INVALID__ "empty command"
  for kv in "${envs[@]}"; do
    case ${kv%%=*} in
      ''|[0-9]*|*[!A-Za-z0-9_]*|BOOM_INSTANCE|BOOM_GENERATION)
        boom_die __EXIT_INVALID__ "invalid environment variable name" ;;
    esac
    case $kv in *=*) ;; *) boom_die __EXIT_INVALID__ "invalid environment entry" ;; esac
  done
  command -v setsid >/dev/null 2>&1 \
    || boom_die __EXIT_LAUNCH_FAILED__ "setsid (util-linux) is not installed on this node"
  boom_dir "$base" "$key"
  dir=$BOOM_DIR
  mkdir -p -- "$dir" 2>/dev/null && chmod 700 -- "$dir" 2>/dev/null \
    || boom_die __EXIT_LAUNCH_FAILED__ "cannot create the instance directory $dir"
  cd -- "$dir" || boom_die __EXIT_LAUNCH_FAILED__ "cannot enter the instance directory $dir"
  boom_lock "$dir"
  pid=$(boom_read pid)
  gen=$(boom_read generation)
  if boom_pid_alive "$pid" && boom_is_ours "$pid" "$key" "$gen"; then
    boom_print_status "$dir" "$key"
    exit __EXIT_ALREADY_RUNNING__
  fi
  # Children of the previous run that outlived it (tensor-parallel workers holding accelerator
  # memory or the port) would break this run: end them first. They carry the marker.
  leftovers=$(boom_marked_pids "$key")
  if [ -n "$leftovers" ]; then
    boom_signal_all TERM "" "$key"
    n=0
    while [ -n "$(boom_marked_pids "$key")" ] && [ "$n" -lt 40 ]; do sleep 0.05; n=$((n + 1)); done
    boom_signal_all KILL "" "$key"
    leftovers=$(printf '%s' "$leftovers" | tr '\n' ' ')
  fi
  # The previous supervisor may be between reaping its engine and writing exit_status.
  n=0
  while boom_supervisor_alive "$dir" && [ "$n" -lt 100 ]; do sleep 0.02; n=$((n + 1)); done
  case $gen in ''|*[!0-9]*) gen=0 ;; esac
  gen=$((gen + 1))
  [ -e log ] && mv -f log log.1
  rm -f pid exit_status supervisor_pid
  {
    printf '%s\0' "$key" "$gen" "$cwd" "$nenv"
    [ "$nenv" -gt 0 ] && printf '%s\0' "${envs[@]}"
    printf '%s\0' "${argv[@]}"
  } > spec.tmp && chmod 600 spec.tmp && mv -f spec.tmp spec || boom_die __EXIT_LAUNCH_FAILED__ "cannot write to $dir"
  printf '%s\n' "$gen" > generation
  printf '%s\n' "$(boom_now)" > started_at
  cat > supervise.sh.tmp <<'BOOM_SUPERVISOR_END'
__SUPERVISOR__
BOOM_SUPERVISOR_END
  mv -f supervise.sh.tmp supervise.sh
  : > log
  [ -n "$leftovers" ] && printf '[boom] ended leftover processes of the previous run: %s\n' "$leftovers" >> log
  setsid "${BASH:-bash}" --norc --noprofile "$dir/supervise.sh" "$dir" </dev/null >/dev/null 2>&1 9>&- &
  deadline=$(( $(boom_ms) + 5000 ))
  until [ -s pid ]; do
    [ "$(boom_ms)" -lt "$deadline" ] || boom_die __EXIT_LAUNCH_FAILED__ "the supervisor did not record a pid within 5 s"
    sleep 0.005
  done
  # A command that is missing or fails at once ends within this window; the caller sees its exit.
  deadline=$(( $(boom_ms) + settle_ms ))
  while [ ! -e exit_status ] && [ "$(boom_ms)" -lt "$deadline" ]; do sleep 0.02; done
  boom_print_status "$dir" "$key"
}

boom_status() {  # base key
  boom_dir "$1" "$2"
  boom_print_status "$BOOM_DIR" "$2"
}

boom_signal_all() {  # <signal> <leader pid or empty> <key>
  local p
  [ -n "$2" ] && kill -s "$1" -- "-$2" 2>/dev/null
  for p in $(boom_marked_pids "$3"); do kill -s "$1" "$p" 2>/dev/null; done
  return 0
}

boom_any_left() {  # <leader pid or empty> <key>
  [ -n "$1" ] && boom_pid_alive "$1" && return 0
  [ -n "$(boom_marked_pids "$2")" ]
}

boom_stop() {  # base key grace_ms
  local key=$2 grace_ms=$3 dir pid gen leader="" deadline
  boom_dir "$1" "$key"
  dir=$BOOM_DIR
  boom_lock "$dir"
  pid=$(boom_read "$dir/pid")
  gen=$(boom_read "$dir/generation")
  # Signal the group only while its leader is provably ours: a recycled pid is someone else's.
  if boom_pid_alive "$pid" && boom_is_ours "$pid" "$key" "$gen"; then leader=$pid; fi
  if boom_any_left "$leader" "$key"; then
    boom_signal_all TERM "$leader" "$key"
    deadline=$(( $(boom_ms) + grace_ms ))
    while boom_any_left "$leader" "$key" && [ "$(boom_ms)" -lt "$deadline" ]; do sleep 0.05; done
    if boom_any_left "$leader" "$key"; then
      boom_signal_all KILL "$leader" "$key"
      deadline=$(( $(boom_ms) + 3000 ))
      while boom_any_left "$leader" "$key" && [ "$(boom_ms)" -lt "$deadline" ]; do sleep 0.02; done
    fi
  fi
  # Let the supervisor record the exit status.
  deadline=$(( $(boom_ms) + 3000 ))
  while [ ! -e "$dir/exit_status" ] && boom_supervisor_alive "$dir" && [ "$(boom_ms)" -lt "$deadline" ]; do
    sleep 0.01
  done
  boom_print_status "$dir" "$key"
}

boom_tail() {  # base key lines previous max_bytes
  local file
  boom_dir "$1" "$2"
  file=$BOOM_DIR/log
  [ "$4" = 1 ] && file=$BOOM_DIR/log.1
  printf '__BOOM_OUTPUT__\n'
  [ -r "$file" ] || return 0
  tail -n "$3" -- "$file" | tail -c "$5"
}

boom_cleanup() {  # base key
  local dir pid gen
  boom_dir "$1" "$2"
  dir=$BOOM_DIR
  boom_lock "$dir"
  pid=$(boom_read "$dir/pid")
  gen=$(boom_read "$dir/generation")
  if boom_pid_alive "$pid" && boom_is_ours "$pid" "$2" "$gen"; then
    boom_die __EXIT_STILL_RUNNING__ "the instance is still running; stop it first"
  fi
  if [ -n "$(boom_marked_pids "$2")" ]; then
    boom_die __EXIT_STILL_RUNNING__ "processes of this instance are still running; stop it first"
  fi
  rm -rf -- "$dir"
  printf '__BOOM_OUTPUT__\n'
}

boom_ports() {  # port...: prints the given ports that a TCP socket listens on (IPv4 or IPv6)
  local port listening f
  for port in "$@"; do
    case $port in ''|*[!0-9]*) boom_die __EXIT_INVALID__ "invalid port" ;; esac
  done
  # awk, not a bash read loop: /proc files are read a byte at a time by `read`, and a busy node
  # has thousands of sockets. Field 4 is the state (0A: LISTEN), field 2 address:port in hex.
  listening=" "
  for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    listening="$listening$(awk '$4 == "0A" { n = split($2, a, ":"); printf "%s ", a[n] }' "$f") "
  done
  printf '__BOOM_OUTPUT__\n'
  for port in "$@"; do
    case $listening in *" $(printf '%04X' "$port") "*) printf '%s\n' "$port" ;; esac
  done
}

boom_main() {
  local args=() field
  while IFS= read -r -d '' field; do args+=("$field"); done < <(base64 -d)
  [ "${#args[@]}" -gt 0 ] || boom_die __EXIT_INVALID__ "no operation"
  local op=${args[0]}
  args=("${args[@]:1}")
  case $op in
    start) boom_start "${args[@]}" ;;
    status) boom_status "${args[@]}" ;;
    stop) boom_stop "${args[@]}" ;;
    tail) boom_tail "${args[@]}" ;;
    cleanup) boom_cleanup "${args[@]}" ;;
    ports) boom_ports "${args[@]}" ;;
    *) boom_die __EXIT_INVALID__ "unknown operation" ;;
  esac
}
"""


def _render() -> str:
    if "BOOM_SUPERVISOR_END" in SUPERVISOR_SH:
        raise AssertionError("the supervisor script contains its heredoc delimiter")
    text = _LAUNCHER_TEMPLATE.replace("__SUPERVISOR__", SUPERVISOR_SH.rstrip("\n"))
    for name, value in (
        ("__EXIT_INVALID__", EXIT_INVALID),
        ("__EXIT_ALREADY_RUNNING__", EXIT_ALREADY_RUNNING),
        ("__EXIT_LAUNCH_FAILED__", EXIT_LAUNCH_FAILED),
        ("__EXIT_STILL_RUNNING__", EXIT_STILL_RUNNING),
    ):
        text = text.replace(name, str(value))
    return text


LAUNCHER_SH = _render()

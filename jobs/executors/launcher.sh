# shellcheck shell=bash
# BooM Console launcher (jobs/executors/launcher.sh). Read by `bash -s`, followed by one call of
# boom_main with its payload on stdin; jobs/executors/launcher.py describes the protocol.
# No `set -u`: bash before 4.4 (CentOS 7, EulerOS) calls an empty "${array[@]}" unbound.
# No global umask either: the engine inherits ours. The instance directory is made 0700 instead.
unset BOOM_INSTANCE BOOM_GENERATION

# Exit codes (launcher.py reads them from these lines and maps them to exceptions).
BOOM_EXIT_INVALID=2
BOOM_EXIT_ALREADY_RUNNING=3
BOOM_EXIT_LAUNCH_FAILED=4
BOOM_EXIT_STILL_RUNNING=5

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

boom_valid_key() {  # 1-80 characters of A-Z a-z 0-9 _ . -, not starting with a dot
  case $1 in
    ''|.*|*[!A-Za-z0-9_.-]*) return 1 ;;
  esac
  [ "${#1}" -le 80 ]
}

boom_check_key() {
  boom_valid_key "$1" || boom_die "$BOOM_EXIT_INVALID" "invalid instance key"
}

boom_base() {  # <base>: sets BOOM_BASE, the instance base directory with a leading ~ expanded
  local base=$1
  # shellcheck disable=SC2088 # a literal ~ from the console, expanded below against this login's HOME
  case $base in
    '~'|'~/'*) [ -n "${HOME:-}" ] || boom_die "$BOOM_EXIT_INVALID" "HOME is not set on this node" ;;
  esac
  # shellcheck disable=SC2088 # as above
  case $base in
    '~') base=$HOME ;;
    '~/'*) base=$HOME/${base:2} ;;
    /*) ;;
    *) boom_die "$BOOM_EXIT_INVALID" "the instance base directory must be absolute or start with ~/" ;;
  esac
  BOOM_BASE=${base%/}
}

boom_dir() {  # <base> <key>: sets BOOM_DIR
  boom_base "$1"
  boom_check_key "$2"
  BOOM_DIR=$BOOM_BASE/$2
}

boom_make_dir() {  # <dir>: create the instance directory, mode 0700
  if ! { mkdir -p -- "$1" 2>/dev/null && chmod 700 -- "$1" 2>/dev/null; }; then
    boom_die "$BOOM_EXIT_LAUNCH_FAILED" "cannot create the instance directory $1"
  fi
}

boom_lock() {  # <dir>: serialise start, stop and cleanup of one instance (fd 9, released at exit)
  [ -d "$1" ] || return 0
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$1/lock" || boom_die "$BOOM_EXIT_LAUNCH_FAILED" "cannot open the lock file in $1"
  flock -w 10 9 || boom_die "$BOOM_EXIT_LAUNCH_FAILED" "another operation on this instance holds its lock"
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
  # shellcheck disable=SC2013 # grep prints /proc/<pid>/environ paths: words without spaces
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
  [ "${#argv[@]}" -gt 0 ] || boom_die "$BOOM_EXIT_INVALID" "empty command"
  for kv in "${envs[@]}"; do
    case ${kv%%=*} in
      ''|[0-9]*|*[!A-Za-z0-9_]*|BOOM_INSTANCE|BOOM_GENERATION)
        boom_die "$BOOM_EXIT_INVALID" "invalid environment variable name" ;;
    esac
    case $kv in *=*) ;; *) boom_die "$BOOM_EXIT_INVALID" "invalid environment entry" ;; esac
  done
  command -v setsid >/dev/null 2>&1 \
    || boom_die "$BOOM_EXIT_LAUNCH_FAILED" "setsid (util-linux) is not installed on this node"
  boom_dir "$base" "$key"
  dir=$BOOM_DIR
  boom_make_dir "$dir"
  cd -- "$dir" || boom_die "$BOOM_EXIT_LAUNCH_FAILED" "cannot enter the instance directory $dir"
  boom_lock "$dir"
  pid=$(boom_read pid)
  gen=$(boom_read generation)
  if boom_pid_alive "$pid" && boom_is_ours "$pid" "$key" "$gen"; then
    boom_print_status "$dir" "$key"
    exit "$BOOM_EXIT_ALREADY_RUNNING"
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
  if ! {
    {
      printf '%s\0' "$key" "$gen" "$cwd" "$nenv"
      [ "$nenv" -gt 0 ] && printf '%s\0' "${envs[@]}"
      printf '%s\0' "${argv[@]}"
    } > spec.tmp && chmod 600 spec.tmp && mv -f spec.tmp spec
  }; then
    boom_die "$BOOM_EXIT_LAUNCH_FAILED" "cannot write to $dir"
  fi
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
    [ "$(boom_ms)" -lt "$deadline" ] || boom_die "$BOOM_EXIT_LAUNCH_FAILED" "the supervisor did not record a pid within 5 s"
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
    boom_die "$BOOM_EXIT_STILL_RUNNING" "the instance is still running; stop it first"
  fi
  if [ -n "$(boom_marked_pids "$2")" ]; then
    boom_die "$BOOM_EXIT_STILL_RUNNING" "processes of this instance are still running; stop it first"
  fi
  rm -rf -- "$dir"
  printf '__BOOM_OUTPUT__\n'
}

boom_write() {  # base key name content [name content]...: files for the engine, in its instance directory
  local dir name i
  boom_dir "$1" "$2"
  dir=$BOOM_DIR
  shift 2
  [ $(( $# % 2 )) -eq 0 ] || boom_die "$BOOM_EXIT_INVALID" "a file name without its content"
  for (( i = 1; i <= $#; i += 2 )); do
    name=${!i}
    case $name in
      ''|.*|*[!A-Za-z0-9_.-]*|*.tmp|lock|pid|supervisor_pid|generation|started_at|spec|log|log.1|exit_status|supervise.sh)
        boom_die "$BOOM_EXIT_INVALID" "invalid file name" ;;
    esac
  done
  boom_make_dir "$dir"
  boom_lock "$dir"
  while [ "$#" -gt 0 ]; do
    if ! { printf '%s' "$2" > "$dir/$1.tmp" && chmod 600 -- "$dir/$1.tmp" && mv -f -- "$dir/$1.tmp" "$dir/$1"; }; then
      boom_die "$BOOM_EXIT_LAUNCH_FAILED" "cannot write $1 in $dir"
    fi
    shift 2
  done
  printf '__BOOM_OUTPUT__\n'
  printf 'workdir=%s\n' "$dir"
}

boom_list() {  # base: the instance directories under base, one key a line
  local d key
  boom_base "$1"
  printf '__BOOM_OUTPUT__\n'
  for d in "$BOOM_BASE"/*/; do
    key=${d%/}
    key=${key##*/}
    if [ -d "$d" ] && boom_valid_key "$key"; then printf '%s\n' "$key"; fi
  done
  return 0
}

boom_ports() {  # port...: prints the given ports that a TCP socket listens on (IPv4 or IPv6)
  local port listening f
  for port in "$@"; do
    case $port in ''|*[!0-9]*) boom_die "$BOOM_EXIT_INVALID" "invalid port" ;; esac
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
  [ "${#args[@]}" -gt 0 ] || boom_die "$BOOM_EXIT_INVALID" "no operation"
  local op=${args[0]}
  args=("${args[@]:1}")
  case $op in
    start) boom_start "${args[@]}" ;;
    status) boom_status "${args[@]}" ;;
    stop) boom_stop "${args[@]}" ;;
    tail) boom_tail "${args[@]}" ;;
    cleanup) boom_cleanup "${args[@]}" ;;
    ports) boom_ports "${args[@]}" ;;
    write) boom_write "${args[@]}" ;;
    list) boom_list "${args[@]}" ;;
    *) boom_die "$BOOM_EXIT_INVALID" "unknown operation" ;;
  esac
}

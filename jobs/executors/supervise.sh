# shellcheck shell=bash
# BooM Console supervisor: starts one engine, records its pid, waits, records its exit status.
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
  # shellcheck disable=SC2163 # each entry is NAME=value: export it as it is
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
# The engine led its own process group: what is left in it (vLLM's engine core and workers after its API
# server was killed) belongs to a run that is over, and would hold memory and ports while the replacement
# starts. End it now; children that left the group carry the instance marker and are ended at the restart.
kill -KILL -- "-$child" 2>/dev/null
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

# shellcheck shell=bash
# BooM Console telemetry sampling session (nodes/probes/sampler.sh): run as
# `bash -c <this> boom-sampler <interval_ms> <node|accelerators>`; nodes/probes/sampler.py describes it.
boom_sampler() {
  export LC_ALL=C
  local interval_ms=$1 mode=$2 to="" smi="" npu="" fields="" tick=0 gpu_pid="" line rest
  case $interval_ms in ''|*[!0-9]*) echo "@@boom:error interval@@"; return 2 ;; esac
  [ "$interval_ms" -ge 100 ] || interval_ms=100
  local secs
  secs=$((interval_ms / 1000)).$(printf '%03d' $((interval_ms % 1000)))
  if command -v timeout >/dev/null 2>&1; then to="timeout -k 2 10"; fi
  echo "@@boom:sampler 1 $interval_ms@@"
  if smi=$(boom_find nvidia-smi __NVIDIA_DIRS__); then
    fields=__GPU_FULL__
    $to "$smi" --query-gpu=$fields --format=csv,noheader,nounits >/dev/null 2>&1 </dev/null || fields=__GPU_BASE__
    echo "@@boom:gpu-fields $fields@@"
    { "$smi" --query-gpu=$fields --format=csv,noheader,nounits -lms "$interval_ms" 2>/dev/null </dev/null |
        while IFS= read -r line; do printf 'G %s\n' "$line"; done; } &
    gpu_pid=$!
  else
    echo "@@boom:missing nvidia-smi@@"
  fi
  if npu=$(boom_find npu-smi __NPU_DIRS__); then :; else echo "@@boom:missing npu-smi@@"; npu=""; fi
  while :; do
    if [ "$mode" = node ]; then
      if [ -r /proc/stat ]; then
        while read -r line rest; do
          if [ "$line" = cpu ]; then printf 'C %s\n' "$rest"; break; fi
        done < /proc/stat
      fi
      if [ -r /proc/meminfo ]; then
        local total="" avail=""
        while read -r line rest; do
          case $line in MemTotal:) total=${rest%% *} ;; MemAvailable:) avail=${rest%% *}; break ;; esac
        done < /proc/meminfo
        printf 'M %s %s\n' "$total" "$avail"
      fi
      if [ -r /proc/loadavg ]; then read -r line rest < /proc/loadavg; printf 'L %s\n' "$line"; fi
      if [ -r /proc/net/dev ]; then
        local rx=0 tx=0 name
        while IFS=: read -r name rest; do
          name=${name// /}
          case $name in lo|Inter-*|face*|"") continue ;; esac
          # shellcheck disable=SC2086 # split the counters: receive bytes is the 1st, transmit the 9th
          set -- $rest
          rx=$((rx + ${1:-0})); tx=$((tx + ${9:-0}))
        done < /proc/net/dev
        printf 'N %s %s\n' "$rx" "$tx"
      fi
      if [ $((tick % 10)) -eq 0 ] && command -v df >/dev/null 2>&1; then
        $to df -P -B1 / 2>/dev/null </dev/null | while read -r _ b c _ rest; do
          case $b in *[!0-9]*|"") ;; *) printf 'D %s %s\n' "$c" "$b" ;; esac
        done
      fi
    fi
    if [ -n "$npu" ]; then
      echo "@@boom:npu@@"
      $to "$npu" info 2>/dev/null </dev/null
      echo "@@boom:npu-end@@"
    fi
    echo "E"
    tick=$((tick + 1))
    # Sleep, and end when stdin closes (the collector closed the session): read's status is above
    # 128 on a timeout, 1 at end of file.
    read -r -t "$secs" line
    [ $? -gt 128 ] || break
  done
  # The pipeline's processes end on their next write to the closed output (SIGPIPE) as well.
  [ -n "$gpu_pid" ] && kill "$gpu_pid" 2>/dev/null
  return 0
}

boom_sampler "$@"

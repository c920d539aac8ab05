# shellcheck shell=bash
# BooM Console node probe (nodes/probes/probe.sh), output format 1. Read-only; prints marker-delimited
# sections. Run as `bash -s` with this on stdin; nodes/probes/script.py describes it and fills in its
# placeholders (tool directories, nvidia-smi fields, time limits).
boom_cat() {
  # Print a readable file with builtins only, at most $2 lines (default 500).
  [ -r "$1" ] || return 1
  local line n=0 max=${2:-500}
  while { IFS= read -r line || [ -n "$line" ]; } && [ "$n" -lt "$max" ]; do
    printf '%s\n' "$line"; n=$((n + 1))
  done < "$1"
  return 0
}

boom_file() {
  # boom_file <section> <path>...: print the first readable path as a section.
  local name=$1 path; shift
  for path in "$@"; do
    if [ -r "$path" ] && [ -f "$path" ]; then
      echo "@@boom:$name $path@@"
      boom_cat "$path"
      return 0
    fi
  done
  return 1
}

boom_run() {
  # boom_run <section> <command>...: run under the timeout, print stdout, stderr and the exit status.
  local name=$1 rc err; shift
  if [ -n "$boom_tmp" ]; then err="$boom_tmp/err"; else err=/dev/null; fi
  boom_out=$($boom_timeout "$@" 2>"$err" </dev/null)
  rc=$?
  echo "@@boom:$name@@"
  [ -n "$boom_out" ] && printf '%s\n' "$boom_out"
  if [ -n "$boom_tmp" ] && [ -s "$err" ]; then
    echo "@@boom:stderr $name@@"
    boom_cat "$err" 20
  fi
  echo "@@boom:rc $name $rc@@"
  return $rc
}

boom_cpuinfo() {
  # The first of each interesting /proc/cpuinfo key, and the processor count (for hosts without nproc).
  boom_cpu_count=0
  [ -r /proc/cpuinfo ] || return 0
  local line key seen="|"
  echo "@@boom:cpuinfo@@"
  while IFS= read -r line; do
    key=${line%%:*}
    key=${key%"${key##*[![:space:]]}"}
    case $key in
      processor) boom_cpu_count=$((boom_cpu_count + 1)) ;;
      "model name"|Hardware|"CPU implementer"|"CPU part"|vendor_id)
        case $seen in
          *"|$key|"*) ;;
          *) printf '%s\n' "$line"; seen="$seen$key|" ;;
        esac ;;
    esac
  done < /proc/cpuinfo
}

boom_host() {
  boom_file os-release /etc/os-release /usr/lib/os-release

  local nodename="" release="" machine="" line
  if command -v uname >/dev/null 2>&1; then
    nodename=$(uname -n 2>/dev/null); release=$(uname -r 2>/dev/null); machine=$(uname -m 2>/dev/null)
  fi
  [ -z "$nodename" ] && [ -r /proc/sys/kernel/hostname ] && read -r nodename < /proc/sys/kernel/hostname
  [ -z "$release" ] && [ -r /proc/sys/kernel/osrelease ] && read -r release < /proc/sys/kernel/osrelease
  [ -n "$machine" ] || machine=${HOSTTYPE:-}
  echo "@@boom:uname@@"
  printf 'nodename=%s\nrelease=%s\nmachine=%s\n' "$nodename" "$release" "$machine"

  boom_cpuinfo
  if command -v lscpu >/dev/null 2>&1; then
    echo "@@boom:lscpu@@"
    $boom_timeout lscpu 2>/dev/null </dev/null | while IFS= read -r line; do
      case $line in
        "Architecture:"*|"CPU(s):"*|"Vendor ID:"*|"Model name:"*|"Socket(s):"*|"Core(s) per socket:"*)
          printf '%s\n' "$line" ;;
      esac
    done
  fi
  local cores=""
  if command -v nproc >/dev/null 2>&1; then cores=$(nproc 2>/dev/null); fi
  if [ -z "$cores" ] && command -v getconf >/dev/null 2>&1; then
    cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null)
  fi
  [ -n "$cores" ] || cores=$boom_cpu_count
  echo "@@boom:nproc@@"
  printf '%s\n' "$cores"

  if [ -r /proc/meminfo ]; then
    echo "@@boom:meminfo@@"
    while IFS= read -r line; do
      case $line in MemTotal:*|MemAvailable:*) printf '%s\n' "$line" ;; esac
    done < /proc/meminfo
  fi

  if command -v df >/dev/null 2>&1; then
    # -x is GNU; busybox and old df reject it, so fall back to listing everything (the parser drops
    # pseudo filesystems) and to 1024-byte blocks where -B1 is unknown too.
    local saved=$boom_timeout
    [ -n "$boom_timeout" ] && boom_timeout="$boom_timeout_cmd __DF_TIMEOUT__"
    boom_out=""
    for boom_df_args in "-P -B1 -x tmpfs -x devtmpfs -x overlay -x squashfs" "-P -B1" "-P -k"; do
      # shellcheck disable=SC2086 # the options are meant to split
      boom_out=$($boom_timeout df $boom_df_args 2>/dev/null </dev/null)
      case $boom_out in Filesystem*) break ;; esac
      boom_out=""
    done
    boom_timeout=$saved
    echo "@@boom:df@@"
    [ -n "$boom_out" ] && printf '%s\n' "$boom_out"
  fi

  boom_file loadavg /proc/loadavg
}

boom_nvidia() {
  local smi
  if ! smi=$(boom_find nvidia-smi __NVIDIA_DIRS__); then
    echo "@@boom:missing nvidia-smi@@"
    return 0
  fi
  echo "@@boom:tool nvidia-smi $smi@@"
  boom_run nvidia-smi-version "$smi" --version
  case $boom_out in
    *[Dd][Rr][Ii][Vv][Ee][Rr]" "[Vv]ersion*) ;;
    *) boom_run nvidia-smi-table "$smi" ;;  # nvidia-smi before --version existed: read the banner
  esac
  boom_run nvidia-smi-query "$smi" --query-gpu=__NVIDIA_FULL_FIELDS__ --format=csv ||
    boom_run nvidia-smi-query "$smi" --query-gpu=__NVIDIA_BASE_FIELDS__ --format=csv
}

boom_ascend() {
  local smi base info
  if smi=$(boom_find npu-smi __NPU_DIRS__); then
    echo "@@boom:tool npu-smi $smi@@"
    boom_run npu-smi-info "$smi" info
    boom_run npu-smi-info-m "$smi" info -m
  else
    echo "@@boom:missing npu-smi@@"
  fi
  boom_file ascend-driver-version-info /usr/local/Ascend/driver/version.info
  boom_file ascend-firmware-version-info /usr/local/Ascend/firmware/version.info
  for base in ${ASCEND_TOOLKIT_HOME:+"$ASCEND_TOOLKIT_HOME"} __CANN_DIRS__; do
    for info in "$base"/*-linux/ascend_toolkit_install.info; do
      if boom_file cann-install-info "$info"; then break 2; fi
    done
  done
  for base in ${ASCEND_TOOLKIT_HOME:+"$ASCEND_TOOLKIT_HOME"} __CANN_DIRS__; do
    if boom_file cann-version-cfg "$base/version.cfg"; then break; fi
  done
}

boom_main() {
  export LC_ALL=C
  boom_tmp=$(mktemp -d 2>/dev/null) || boom_tmp=""
  [ -d "$boom_tmp" ] || boom_tmp=""
  trap '[ -n "$boom_tmp" ] && rm -rf -- "$boom_tmp"' EXIT
  boom_timeout="" boom_timeout_cmd="" boom_out=""
  if command -v timeout >/dev/null 2>&1; then
    if timeout -k 1 5 true >/dev/null 2>&1; then boom_timeout_cmd="timeout -k 5"
    elif timeout 5 true >/dev/null 2>&1; then boom_timeout_cmd="timeout"
    fi
    [ -n "$boom_timeout_cmd" ] && boom_timeout="$boom_timeout_cmd __TOOL_TIMEOUT__"
  fi
  echo "@@boom:probe 1@@"
  boom_host
  boom_nvidia
  boom_ascend
  echo "@@boom:end@@"
}

# The output leaves in one write, not one per line: every small write becomes an SSH packet of its own,
# and the console spent more CPU receiving a hundred small packets than on the rest of the probe. dd
# gathers it (a short probe output is far below 4 MiB) and writes it at the end; without a dd that
# knows iflag=fullblock, the lines go out as they come.
if dd if=/dev/null of=/dev/null iflag=fullblock 2>/dev/null; then
  boom_main </dev/null | dd bs=4M iflag=fullblock 2>/dev/null
else
  boom_main </dev/null
fi
exit 0

# shellcheck shell=bash
# boom_find, shared by the node programs probe.sh and sampler.sh: script.py and sampler.py put this
# file in front of theirs when they load them, so the node receives one self-contained script.
boom_find() {
  # boom_find <tool> <dir>...: print where the tool is, PATH first, then the usual places.
  local tool=$1 found dir; shift
  found=$(command -v "$tool" 2>/dev/null)
  if [ -n "$found" ] && [ -x "$found" ]; then printf '%s\n' "$found"; return 0; fi
  for dir in "$@"; do
    if [ -x "$dir/$tool" ] && [ -f "$dir/$tool" ]; then printf '%s\n' "$dir/$tool"; return 0; fi
  done
  return 1
}

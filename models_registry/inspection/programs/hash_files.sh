# shellcheck shell=sh
# The hash program without Python: sha256sum and GNU stat, POSIX sh. Run as
# `sh -c <this> boom-hash-sh <method> <directory> <file>...` (the method is ignored); prints the
# lines of hash_files.py. Paths with newlines are not escaped on this path.
shift
dir=$1
shift
if ! cd -- "$dir" 2>/dev/null; then printf '@@fatal %s is not a directory\n' "$dir"; exit 2; fi
total=0
for f in "$@"; do s=$(stat -L -c %s -- "$f" 2>/dev/null || echo 0); total=$((total + s)); done
printf '@@plan %s %s\n@@method sha256sum\n' "$total" "$#"
ok=0
failed=0
for f in "$@"; do
  case "/$f/" in */../*)
    printf '@@error %s\trefused: path leaves the directory\n' "$f"; failed=$((failed + 1)); continue;;
  esac
  if [ ! -e "$f" ]; then printf '@@missing %s\n' "$f"; failed=$((failed + 1)); continue; fi
  if [ ! -f "$f" ]; then printf '@@error %s\tnot a regular file\n' "$f"; failed=$((failed + 1)); continue; fi
  before=$(stat -L -c '%s %Y %i %d' -- "$f")
  size=${before%% *}
  printf '@@progress %s 0 %s\n' "$f" "$size"
  if ! out=$(sha256sum -b -- "$f" 2>&1); then
    printf '@@error %s\t%s\n' "$f" "$out"; failed=$((failed + 1)); continue
  fi
  after=$(stat -L -c '%s %Y %i %d' -- "$f" 2>/dev/null)
  if [ "$before" != "$after" ]; then
    printf '@@changed %s\tchanged while it was hashed: size/mtime/inode %s -> %s\n' "$f" "$before" "$after"
    failed=$((failed + 1)); continue
  fi
  digest=${out%% *}
  digest=${digest#\\}
  printf '@@progress %s %s %s\n@@sha256 %s %s\n' "$f" "$size" "$size" "$digest" "$f"
  ok=$((ok + 1))
done
printf '@@done %s %s\n' "$ok" "$failed"
[ "$failed" -eq 0 ]

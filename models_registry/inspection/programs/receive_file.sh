# shellcheck shell=sh
# Write standard input into one file of a model copy. Run as
# `sh -c <this> boom-receive <absolute file path> <expected size>`: the bytes go to `<path>.boom-part`,
# which becomes `<path>` only once it holds exactly the expected size (an interrupted transfer leaves
# the part file, and the next transfer writes it again from the start).
p=$1
n=$2
mkdir -p -- "$(dirname -- "$p")" || exit 3
cat > "$p.boom-part" || exit 4
s=$(wc -c < "$p.boom-part")
if [ "$s" -ne "$n" ]; then
  printf 'received %s of %s bytes\n' "$s" "$n" >&2
  exit 5
fi
mv -f -- "$p.boom-part" "$p"

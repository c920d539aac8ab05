# ruff: noqa: UP004, UP024, UP031, UP036 - runs on the node's Python, 2.7 included: no f-strings, no pathlib
"""Prepare or remove a model copy's directory on a node.

Usage: ``python copy_files.py <plan|remove> <directory>`` with the manifest on standard input, one file a
line: ``<size> <relative path>`` (paths escaped like hash_files.py). In practice the console sends this
file base64 encoded, see ``models_registry/inspection/remote.py``. Stdlib only, Python 2.7 and 3.x.

``plan`` prints, touching nothing:

* ``@@free <bytes> <writable 0|1> <existing ancestor>``: free bytes of the filesystem that will hold the
  directory (its nearest existing ancestor), and whether the login may write there;
* ``@@have <size> <path>`` for every manifest file already there (a regular file, its size now).

``remove`` deletes the manifest files and their ``.boom-part`` leftovers, then the directories that became
empty (the directory itself included), and prints ``@@removed <files> <directories>``; it never deletes a
file the manifest does not name.
"""
import errno
import os
import sys

PART = ".boom-part"


def esc(path):
    return path.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def unesc(path):
    out = []
    i = 0
    while i < len(path):
        c = path[i]
        if c == "\\" and i + 1 < len(path):
            out.append({"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}.get(path[i + 1], path[i + 1]))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def manifest():
    files = []
    for line in sys.stdin.read().split("\n"):
        if not line.strip():
            continue
        size, _, path = line.partition(" ")
        path = unesc(path)
        if not path or path.startswith("/") or ".." in path.split("/"):
            emit("@@fatal refused file name %s" % esc(path))
            sys.exit(2)
        files.append((int(size), path))
    return files


def plan(directory, files):
    ancestor = directory
    while not os.path.isdir(ancestor):
        parent = os.path.dirname(ancestor.rstrip("/")) or "/"
        if parent == ancestor:
            break
        ancestor = parent
    st = os.statvfs(ancestor)
    writable = 1 if os.access(ancestor, os.W_OK | os.X_OK) else 0
    emit("@@free %d %d %s" % (st.f_bavail * st.f_frsize, writable, esc(ancestor)))
    for _size, path in files:
        full = os.path.join(directory, path)
        try:
            if os.path.isfile(full):
                emit("@@have %d %s" % (os.path.getsize(full), esc(path)))
        except OSError:
            pass


def remove(directory, files):
    removed = 0
    dirs = set()
    for _size, path in files:
        full = os.path.join(directory, path)
        for candidate in (full, full + PART):
            try:
                if os.path.isfile(candidate) or os.path.islink(candidate):
                    os.unlink(candidate)
                    removed += 1
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    emit("@@error %s\t%s" % (esc(path), exc.strerror))
        parent = os.path.dirname(path)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    gone = 0
    for d in sorted(dirs, key=lambda p: -p.count("/")) + [""]:
        try:
            os.rmdir(os.path.join(directory, d) if d else directory)
            gone += 1
        except OSError:
            pass
    emit("@@removed %d %d" % (removed, gone))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("plan", "remove"):
        emit("@@fatal usage: copy_files.py plan|remove <directory>")
        return 2
    directory = sys.argv[2]
    files = manifest()
    if sys.argv[1] == "plan":
        plan(directory, files)
    else:
        remove(directory, files)
    return 0


if __name__ == "__main__":
    sys.exit(main())

# ruff: noqa: UP004, UP024, UP031, UP036 - runs on the node's Python, 2.7 included: no f-strings, no pathlib
"""Stream sha256 over files of a directory on a node, printing line-oriented progress.

Usage: ``python hash_files.py <auto|python|sha256sum> <directory> <file>...`` (in practice the console
sends this file base64 encoded, see ``models_registry/inspection/remote.py``). Stdlib only, Python 2.7
and 3.x. The output lines are described and parsed in ``models_registry.inspection.hashing``.
"""
import errno
import hashlib
import os
import stat
import subprocess
import sys
import time

CHUNK = 1 << 20
INTERVAL = 0.5
CALIBRATE_ABOVE = 256 << 20


def esc(path):
    return path.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def native(data):
    """bytes -> the native str type (bytes stay bytes on Python 2, so paths never mix encodings)."""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def which(name):
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def hash_python(path, report):
    h = hashlib.sha256()
    done = 0
    last = time.time()
    f = open(path, "rb")
    try:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            h.update(block)
            done += len(block)
            now = time.time()
            if now - last >= INTERVAL:
                report(done)
                last = now
    finally:
        f.close()
    return h.hexdigest(), done


def proc_position(pid, target, cache):
    try:
        if "fd" not in cache:
            base = "/proc/%d/fd" % pid
            for fd in os.listdir(base):
                if os.path.realpath(os.path.join(base, fd)) == target:
                    cache["fd"] = fd
                    break
            else:
                return None
        f = open("/proc/%d/fdinfo/%s" % (pid, cache["fd"]))
        try:
            for line in f:
                if line.startswith("pos:"):
                    return int(line.split()[1])
        finally:
            f.close()
    except (OSError, IOError, ValueError):
        return None
    return None


def wait(proc, seconds):
    if sys.version_info[0] >= 3:
        try:
            proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return True
        time.sleep(0.02)
    return proc.poll() is not None


def hash_tool(tool, path, size, report):
    proc = subprocess.Popen([tool, "-b", "--", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    target = os.path.realpath(path)
    cache = {}
    while not wait(proc, INTERVAL):
        pos = proc_position(proc.pid, target, cache)
        if pos is not None:
            report(min(pos, size))
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise IOError(native(err).strip() or "sha256sum failed")
    digest = native(out.split()[0]).lstrip("\\")
    return digest, None


def calibrate(tool):
    """Return the faster way to hash on this node: the sha256sum tool or Python's hashlib."""
    data = b"\0" * (32 << 20)
    start = time.time()
    hashlib.sha256(data).hexdigest()
    python_seconds = time.time() - start
    start = time.time()
    proc = subprocess.Popen([tool], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc.communicate(data)
    tool_seconds = time.time() - start
    return "python" if python_seconds * 1.1 < tool_seconds else "sha256sum"


def fingerprint(st):
    return (st.st_size, st.st_mtime, st.st_ino, st.st_dev)


def main():
    method, root, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    if not os.path.isdir(root):
        emit("@@fatal " + esc("%s is not a directory" % root))
        return 2
    sizes = {}
    for name in names:
        try:
            sizes[name] = os.stat(os.path.join(root, name)).st_size
        except OSError:
            sizes[name] = 0
    total = sum(sizes.values())
    tool = which("sha256sum")
    if method == "auto":
        if tool is None:
            method = "python"
        elif total >= CALIBRATE_ABOVE:
            method = calibrate(tool)
        else:
            method = "python"
    if method == "sha256sum" and tool is None:
        method = "python"
    emit("@@plan %d %d" % (total, len(names)))
    emit("@@method " + method)
    ok = failed = 0
    for name in names:
        parts = name.split("/")
        if not name or name.startswith("/") or ".." in parts:
            emit("@@error %s\t%s" % (esc(name), "refused: path leaves the directory"))
            failed += 1
            continue
        path = os.path.join(root, name)
        try:
            before = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                emit("@@missing " + esc(name))
            else:
                emit("@@error %s\t%s" % (esc(name), exc.strerror or str(exc)))
            failed += 1
            continue
        if not stat.S_ISREG(before.st_mode):
            emit("@@error %s\t%s" % (esc(name), "not a regular file"))
            failed += 1
            continue
        size = before.st_size

        def report(done, name=name, size=size):
            emit("@@progress %s %d %d" % (esc(name), done, size))

        report(0)
        try:
            if method == "sha256sum":
                digest, done = hash_tool(tool, path, size, report)
            else:
                digest, done = hash_python(path, report)
            after = os.stat(path)
        except (IOError, OSError) as exc:
            emit("@@error %s\t%s" % (esc(name), getattr(exc, "strerror", None) or str(exc)))
            failed += 1
            continue
        if fingerprint(before) != fingerprint(after) or (done is not None and done != size):
            emit("@@changed %s\tchanged while it was hashed: size %d -> %d bytes, mtime %.6f -> %.6f%s" % (
                esc(name), before.st_size, after.st_size, before.st_mtime, after.st_mtime,
                "" if (before.st_ino, before.st_dev) == (after.st_ino, after.st_dev) else ", file replaced"))
            failed += 1
            continue
        report(size)
        emit("@@sha256 %s %s" % (digest, esc(name)))
        ok += 1
    emit("@@done %d %d" % (ok, failed))
    return 0 if failed == 0 else 1


sys.exit(main())

# ruff: noqa: UP004, UP024, UP031, UP036 - runs on the node's Python, 2.7 included: no f-strings, no pathlib
"""Send or receive one file of a model copy through the SSH session's pipe, the bytes moved by the kernel.

Usage: ``python stream_file.py send <path>`` writes the file to standard output (what ``cat`` does);
``python stream_file.py receive <path> <size>`` writes standard input to ``<path>.boom-part`` and renames
it to ``<path>`` once it holds exactly ``<size>`` bytes (what ``receive_file.sh`` does, with its exit
codes: 3 the directory cannot be made, 4 the write failed, 5 a different size arrived). In practice the
console sends this file base64 encoded, see ``models_registry/inspection/remote.py``, and only for large
files: starting Python costs more than ``cat`` saves on a small one. Stdlib only, Python 2.7 and 3.x.

Why not ``cat``: between the file and sshd's pipe, ``cat`` copies every byte into its own memory and out
again, 128 KiB at a time, through a 64 KiB pipe. Here ``splice(2)`` (Python 3.10 and newer) moves pages
between the file and the pipe without that copy, and the pipe is grown to 1 MiB, so sshd and this
program wake each other up far less often. Where splice is missing or refused (an older Python, a session
whose standard streams are sockets), it reads and writes 1 MiB at a time.
"""
import errno
import os
import sys

try:
    import fcntl
except ImportError:  # not on Linux: plain reads and writes
    fcntl = None

PART = ".boom-part"
CHUNK = 1 << 20
F_SETPIPE_SZ = 1031  # Linux


def grow_pipe(fd):
    """Make the pipe behind ``fd`` 1 MiB (64 KiB by default); nothing if it is no pipe or may not grow."""
    if fcntl is None:
        return
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, CHUNK)
    except (IOError, OSError):  # not a pipe, or over /proc/sys/fs/pipe-max-size for an unprivileged user
        pass


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def move(src, dst):
    """Move every byte from ``src`` to ``dst`` until end of file; return how many."""
    total = 0
    splice = getattr(os, "splice", None)
    while splice is not None:
        try:
            n = splice(src, dst, CHUNK)
        except OSError as exc:
            if total == 0 and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EBADF):
                break  # neither end is a pipe, or no splice here: read and write instead
            raise
        if not n:
            return total
        total += n
    while True:
        data = os.read(src, CHUNK)
        if not data:
            return total
        write_all(dst, data)
        total += len(data)


def fail(message, code):
    sys.stderr.write(message + "\n")
    return code


def reason(exc):
    return exc.strerror or str(exc)


def send(path):
    grow_pipe(1)
    try:
        fd = os.open(path, os.O_RDONLY)
    except (IOError, OSError) as exc:
        return fail("%s: %s" % (path, reason(exc)), 1)
    try:
        move(fd, 1)
    except (IOError, OSError) as exc:  # EPIPE: the console went away
        return fail("%s: %s" % (path, reason(exc)), 1)
    finally:
        os.close(fd)
    return 0


def receive(path, size):
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory)
    except (IOError, OSError) as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(directory):
            return fail("%s: %s" % (directory, reason(exc)), 3)
    grow_pipe(0)
    part = path + PART
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            received = move(0, fd)
        finally:
            os.close(fd)
    except (IOError, OSError) as exc:
        return fail("%s: %s" % (part, reason(exc)), 4)
    if received != size:
        return fail("received %d of %d bytes" % (received, size), 5)
    os.rename(part, path)
    return 0


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "send":
        return send(args[1])
    if len(args) == 3 and args[0] == "receive" and args[2].isdigit():
        return receive(args[1], int(args[2]))
    return fail("usage: stream_file.py send <path> | receive <path> <size>", 2)


if __name__ == "__main__":
    sys.exit(main())

"""Real OpenSSH servers on loopback ports, for integration tests of the SSH transport and executors.

Usage::

    with SshdNode(env={"BOOM_FAKE_GPUS": "2"}, tools={"nvidia-smi": "#!/bin/sh\\necho fake"}) as node:
        result = POOL.run(node.target(), "nvidia-smi")

Each node lives in its own temporary directory: host key(s), a generated
ed25519 client key authorised for the current user, ``sshd_config`` and the
server's log. Remote commands run as the current user (root in CI) through
its login shell; ``env`` becomes ``SetEnv`` lines, so a test node can have
fake tools first on its PATH and ``BOOM_FAKE_*`` switches in its environment.

Tests call ``require_sshd()`` first: locally a missing sshd skips with a
reason; under ``CI=true`` it fails, because a skipped integration test in CI
hides a broken environment (STYLE.md section 9).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

SSHD = "/usr/sbin/sshd"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT_S = 10.0


def sshd_available() -> bool:
    """True when an OpenSSH server binary is installed at ``/usr/sbin/sshd``."""
    return os.access(SSHD, os.X_OK)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def require_sshd() -> None:
    """Skip the calling test when sshd is missing; fail instead under ``CI=true``."""
    import pytest

    if sshd_available():
        return
    reason = f"OpenSSH server not installed ({SSHD} missing; apt-get install openssh-server)"
    if _in_ci():
        pytest.fail(f"sshd missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def generate_private_key(kind: str = "ed25519"):
    """A fresh ``cryptography`` private key: ``ed25519``, ``rsa`` (2048 bits) or ``ecdsa`` (P-256)."""
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key kind {kind!r}")


def openssh_private(key) -> str:
    """Unencrypted OpenSSH private-key text for a ``cryptography`` key."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode("ascii")


def openssh_public(key) -> str:
    """``"<type> <base64>"`` for a ``cryptography`` private key's public half."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode("ascii")
    )


class SshdNode:
    """One ``sshd`` on 127.0.0.1 with its own keys, config and log.

    ``env``: extra environment of remote commands (``SetEnv``).
    ``tools``: executable scripts (name -> content) written to ``<dir>/bin``,
    which is put first on the remote PATH.
    ``host_key_types``: host keys to generate; the first one's line is
    ``host_key_line``, all of them are in ``host_key_lines``.
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        tools: dict[str, str] | None = None,
        host_key_types: tuple[str, ...] = ("ed25519",),
    ) -> None:
        self.env = dict(env or {})
        self.tools = dict(tools or {})
        self.host_key_types = tuple(host_key_types)
        self.username = getpass.getuser()
        self.port = 0
        self.dir: Path | None = None
        self.host_key_lines: dict[str, str] = {}
        self.client_key_pem = ""
        self.client_public_key = ""
        self._proc: subprocess.Popen | None = None
        self._log_file = None

    # -- lifecycle

    def __enter__(self) -> SshdNode:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.cleanup()

    @property
    def host_key_line(self) -> str:
        """The first host key, ``"type base64"``, as a client pins it."""
        return self.host_key_lines[self.host_key_types[0]]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> SshdNode:
        """Create the directory and keys on first start, then start sshd and wait until it accepts."""
        if self.running:
            return self
        if self.dir is None:
            self._prepare()
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        for attempt in range(3):
            if not self.port or attempt:
                self.port = free_port()  # a new port only on first start or after a clash
            self._write_config()
            if self._launch():
                return self
        raise RuntimeError(f"sshd did not start; its log:\n{self.log_text()}")

    def stop(self) -> None:
        """Stop sshd and every session it serves, like a machine going down; keeps the directory.

        Killing only the listener would leave open connections working (each
        one is served by its own sshd process), so the whole process tree goes.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            for pid in _descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same keys."""
        self.stop()
        self._write_config()
        if not self._launch():
            raise RuntimeError(f"sshd did not restart on port {self.port}; its log:\n{self.log_text()}")

    def rotate_host_key(self) -> str:
        """Replace the host keys (a reinstalled machine, or an impostor) and restart; returns the new line."""
        for kind in self.host_key_types:
            self._write_host_key(kind)
        self.restart()
        return self.host_key_line

    def cleanup(self) -> None:
        """Stop sshd and delete the directory."""
        self.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- helpers for tests

    def target(self, *, pinned: bool = True, **overrides):
        """An ``SSHTarget`` for this node; ``pinned`` pins the current host key."""
        from nodes.transports.ssh import SSHTarget

        fields = {
            "host": "127.0.0.1",
            "port": self.port,
            "username": self.username,
            "private_key": self.client_key_pem,
            "passphrase": None,
            "pinned_host_key": self.host_key_line if pinned else None,
            "connect_timeout": 5.0,
        }
        fields.update(overrides)
        return SSHTarget(**fields)

    def log_text(self) -> str:
        """Everything sshd logged so far (it runs with ``-e``: log to stderr)."""
        if self.dir is None or not (self.dir / "sshd.log").exists():
            return ""
        return (self.dir / "sshd.log").read_text(errors="replace")

    def authorize(self, public_key_line: str) -> None:
        """Add another client public key to ``authorized_keys`` (read per login: no restart)."""
        with open(self.dir / "authorized_keys", "a") as fh:
            fh.write(public_key_line.strip() + "\n")

    # -- internals

    def _prepare(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="boom-sshd-"))
        self.dir.chmod(0o700)
        for kind in self.host_key_types:
            self._write_host_key(kind)
        client = generate_private_key("ed25519")
        self.client_key_pem = openssh_private(client)
        self.client_public_key = openssh_public(client)
        (self.dir / "authorized_keys").write_text(self.client_public_key + "\n")
        if self.tools:
            bindir = self.dir / "bin"
            bindir.mkdir()
            for name, content in self.tools.items():
                path = bindir / name
                path.write_text(content)
                path.chmod(0o755)

    def _write_host_key(self, kind: str) -> None:
        key = generate_private_key(kind)
        path = self.dir / f"host_{kind}"
        path.write_text(openssh_private(key))
        path.chmod(0o600)  # sshd ignores host keys other users can read
        self.host_key_lines[kind] = openssh_public(key)

    def _remote_env(self) -> dict[str, str]:
        env = dict(self.env)
        if self.tools:
            env["PATH"] = f"{self.dir / 'bin'}:{env.get('PATH', DEFAULT_PATH)}"
        return env

    def _write_config(self) -> None:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            *(f"HostKey {self.dir / f'host_{kind}'}" for kind in self.host_key_types),
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "MaxStartups 100:30:200",
            "MaxSessions 100",
            "LogLevel INFO",
        ]
        env = self._remote_env()
        for name, value in env.items():
            if not name.replace("_", "").isalnum() or any(c in value for c in '"\n\r\\'):
                raise ValueError(f"cannot pass {name!r} through SetEnv")
        if env:
            # One line: sshd keeps only the first SetEnv directive it reads.
            lines.append("SetEnv " + " ".join(f'"{name}={value}"' for name, value in env.items()))
        (self.dir / "sshd_config").write_text("\n".join(lines) + "\n")

    def _launch(self) -> bool:
        """Start sshd and wait until it logs that it listens; False when it exited (e.g. port taken)."""
        log_path = self.dir / "sshd.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        self._log_file = open(log_path, "ab")
        self._proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        # Wait for sshd's own "Server listening" line rather than connecting:
        # a probe connection would be logged as a failed login, and another
        # process holding the port would look like success.
        ready = f"Server listening on 127.0.0.1 port {self.port}".encode()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.stop()
                return False
            with open(log_path, "rb") as fh:
                fh.seek(offset)
                if ready in fh.read():
                    return True
            time.sleep(0.01)
        self.stop()
        return False


def _descendants(pid: int) -> list[int]:
    """All processes below ``pid`` (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name (field 2) may contain spaces and parentheses; fields resume after the last ")".
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found

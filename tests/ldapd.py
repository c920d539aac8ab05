"""A real OpenLDAP server (Debian's ``slapd``) on a free loopback port, with its own directory in a
temporary folder, for the LDAP sign-in tests.

Usage::

    with Slapd(ldif) as server:
        server.url  # ldap://127.0.0.1:PORT

The directory (suffix ``dc=example,dc=com``, root ``cn=admin,dc=example,dc=com`` / ``ROOT_PASSWORD``) is
loaded from the LDIF with ``slapadd`` before the server starts; slapd runs in the foreground (``-d 0``)
as a child of the test process and is stopped on exit. Tests call ``require_slapd()`` first: locally a
missing slapd skips; under ``CI=true`` it fails (scripts/ci-services.sh installs it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


def require_slapd() -> None:
    from tests.conftest import require

    require(Path(SLAPD).exists() and Path(SLAPADD).exists() and Path("/etc/ldap/schema/core.schema").exists(),
            "OpenLDAP slapd (apt-get install slapd ldap-utils)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Slapd:
    def __init__(self, ldif: str):
        self.ldif = ldif
        self.dir = Path(tempfile.mkdtemp(prefix="boom-slapd-"))
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def _config(self) -> Path:
        (self.dir / "db").mkdir()
        lines = [f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS]
        lines += [
            f"pidfile {self.dir / 'slapd.pid'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            "database mdb",
            "maxsize 10485760",
            f'suffix "{SUFFIX}"',
            f'rootdn "{ROOT_DN}"',
            f"rootpw {ROOT_PASSWORD}",
            f"directory {self.dir / 'db'}",
            # Passwords are compared by binds only; everything else is readable by bound users.
            "access to attrs=userPassword by anonymous auth by self write by * none",
            "access to * by users read by anonymous auth",
        ]
        path = self.dir / "slapd.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> Slapd:
        config = self._config()
        (self.dir / "data.ldif").write_text(self.ldif)
        subprocess.run([SLAPADD, "-f", str(config), "-l", str(self.dir / "data.ldif")], check=True,
                       capture_output=True, timeout=60)
        log = open(self.dir / "slapd.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen([SLAPD, "-d", "0", "-h", f"{self.url}/", "-f", str(config)],
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited: {(self.dir / 'slapd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("slapd did not answer within 15 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def modify(self, dn: str, changes) -> None:
        """Change the directory as its administrator (python-ldap modlist)."""
        import ldap

        conn = ldap.initialize(self.url)
        conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        conn.modify_s(dn, changes)
        conn.unbind_s()

    def __enter__(self) -> Slapd:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

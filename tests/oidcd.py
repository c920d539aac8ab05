"""A real OpenID provider for the tests: tests/oidc_provider.mjs on node with the npm package
``oidc-provider`` (pinned below), installed into ``~/.cache/boom-console/oidc-provider`` on first use (or by
scripts/ci-services.sh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.ldapd import free_port

OIDC_PROVIDER_VERSION = "9.13.3"
MODULE_DIR = Path(os.environ.get("CONSOLE_TEST_OIDC_PROVIDER_DIR",
                                 Path.home() / ".cache" / "boom-console" / "oidc-provider"))
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")


def installed_version() -> str | None:
    try:
        return json.loads((MODULE_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def require_oidc_provider() -> None:
    """node and the pinned oidc-provider in the cache folder; installs the package with npm if missing."""
    from tests.conftest import require

    require(shutil.which("node") is not None and shutil.which("npm") is not None,
            "node and npm (apt-get install nodejs npm)")
    if installed_version() != OIDC_PROVIDER_VERSION:
        MODULE_DIR.mkdir(parents=True, exist_ok=True)
        package = MODULE_DIR / "package.json"
        if not package.exists():
            package.write_text('{"name": "boom-console-oidc-provider", "private": true}\n')
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", f"oidc-provider@{OIDC_PROVIDER_VERSION}"],
                              cwd=MODULE_DIR, capture_output=True, text=True, timeout=300)
        require(done.returncode == 0 and installed_version() == OIDC_PROVIDER_VERSION,
                f"npm oidc-provider@{OIDC_PROVIDER_VERSION} ({done.stderr.strip()[-300:]})")


class OpenIDProvider:
    def __init__(self, client_id: str, client_secret: str, redirect_uri: str, accounts: dict[str, dict]):
        self.client_id, self.client_secret = client_id, client_secret
        self.redirect_uri, self.accounts = redirect_uri, accounts
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> OpenIDProvider:
        env = dict(os.environ, OIDC_MODULE=str(MODULE_DIR), OIDC_PORT=str(self.port), OIDC_CLIENT_ID=self.client_id,
                   OIDC_CLIENT_SECRET=self.client_secret, OIDC_REDIRECT_URI=self.redirect_uri,
                   OIDC_ACCOUNTS=json.dumps(self.accounts))
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(["node", str(SCRIPT)], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"oidc-provider exited: {self.log.read()[-2000:]}")
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("oidc-provider did not answer within 30 s")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

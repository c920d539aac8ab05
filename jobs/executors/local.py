"""Run engines on the console's own machine: ``LAUNCHER_SH`` through a local ``bash -s``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nodes.probes.ssh import CommandResult

from .base import DEFAULT_SETTLE_S, DEFAULT_TIMEOUT_S, ExecutorError, ExecutorTimeout, ScriptExecutor

__all__ = ["LocalExecutor"]

# The console's own settings (secret key, database URL, ...) stay out of the engines' environment.
# The console's own settings and credentials never reach an engine started on node `local`.
_PRIVATE_ENV_PREFIXES = ("CONSOLE_", "DJANGO_", "CELERY_", "BOOM_INSTANCE", "BOOM_GENERATION", "DATABASE_URL",
                         "REDIS_URL", "TEST_DATABASE_URL", "TEST_REDIS_URL", "PGPASSWORD", "EMAIL_", "AWS_SECRET")


def engine_base_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The console's environment minus its private settings: what local engines start from."""
    environ = dict(os.environ if environ is None else environ)
    return {k: v for k, v in environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}


class LocalExecutor(ScriptExecutor):
    """Instances under ``base_dir`` (e.g. ``$CONSOLE_DATA_DIR/instances``) on this machine.

    The engine runs in its own session (``setsid``), detached from the console: restarting or
    killing the console does not touch it, and ``find`` re-adopts it afterwards.
    """

    kind = "local"

    def __init__(
        self,
        base_dir: Path | str,
        *,
        settle_s: float = DEFAULT_SETTLE_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        env: dict[str, str] | None = None,
    ) -> None:
        base = Path(base_dir).expanduser().absolute()
        super().__init__(str(base), settle_s=settle_s, timeout_s=timeout_s)
        self._env = engine_base_env(env)

    def _run_script(self, script: str, timeout: float) -> CommandResult:
        try:
            done = subprocess.run(
                ["bash", "--norc", "--noprofile", "-s"],
                input=script,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout,
                env=self._env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ExecutorTimeout(f"the local launcher did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise ExecutorError(f"cannot run bash: {exc}") from None
        return CommandResult(done.stdout, done.stderr, done.returncode, "")

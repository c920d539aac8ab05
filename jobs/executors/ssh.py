"""Run engines on a node over SSH: ``LAUNCHER_SH`` on the channel's stdin of ``bash -s``.

One SSH command per operation (one round trip for ``start``). The engine is started in its own
session with every descriptor on files or ``/dev/null``, so it survives the channel and the
connection closing, and the console restarting.
"""

from __future__ import annotations

from nodes.probes.ssh import CommandResult

from .base import DEFAULT_SETTLE_S, DEFAULT_TIMEOUT_S, ScriptExecutor, Shell

__all__ = ["DEFAULT_REMOTE_BASE", "SSHExecutor"]

DEFAULT_REMOTE_BASE = "~/.boom-console/instances"
# --norc: the login shell already read the user's rc files; a second read costs time (pyenv init).
REMOTE_COMMAND = "bash --norc --noprofile -s"


class SSHExecutor(ScriptExecutor):
    """``shell(command, *, stdin=None, timeout) -> CommandResult``, e.g. ``partial(POOL.run, target)``.

    Transport errors raised by ``shell`` (``SSHError``: ``Unreachable``, ``CommandTimeout``, ...)
    propagate unchanged.
    """

    kind = "ssh"

    def __init__(
        self,
        shell: Shell,
        base_dir: str = DEFAULT_REMOTE_BASE,
        *,
        settle_s: float = DEFAULT_SETTLE_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(base_dir, settle_s=settle_s, timeout_s=timeout_s)
        self.shell = shell

    def _run_script(self, script: str, timeout: float) -> CommandResult:
        return self.shell(REMOTE_COMMAND, stdin=script, timeout=timeout)

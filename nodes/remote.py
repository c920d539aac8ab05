"""Run commands on a node, whatever its transport: the one door that executors, model imports and
checksum verification use to reach a machine.

Commands are argv lists (quoted with ``shlex.join`` for the remote shell) or fixed scripts sent on
stdin: user text never reaches a shell unquoted.
"""

import subprocess
from collections.abc import Sequence

from django.conf import settings

from nodes.probes.ssh import POOL, CommandResult, SSHError, quote_argv


class NodeCommandError(Exception):
    """The node could not be reached, or the command could not run there."""


def run_on_node(node, command: Sequence[str] | str, *, stdin: str | None = None,
                timeout: float | None = None) -> CommandResult:
    """Run ``command`` (an argv list, or a fixed shell string) on ``node`` and return its output.

    A non-zero exit code is returned, not raised; an unreachable node raises NodeCommandError.
    """
    timeout = timeout or float(settings.CONSOLE_SSH_COMMAND_TIMEOUT_S)
    text = command if isinstance(command, str) else quote_argv(list(command))
    if node.transport == "local":
        try:
            completed = subprocess.run(["bash", "-c", text], input=stdin, capture_output=True, text=True,
                                       timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise NodeCommandError(f"the command did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise NodeCommandError(f"the command could not run: {exc}") from None
        return CommandResult(completed.stdout, completed.stderr, completed.returncode, "")
    from nodes.probes.runner import ssh_target

    if node.credential_id is None:
        raise NodeCommandError("no SSH credential is set for this node")
    try:
        return POOL.run(ssh_target(node), text, stdin=stdin, timeout=timeout)
    except SSHError as exc:
        raise NodeCommandError(exc.reason) from None

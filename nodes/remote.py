"""Run commands on a node, whatever its transport: the one door that executors, model imports and
checksum verification use to reach a machine.

Commands are argv lists (quoted with ``shlex.join`` for the remote shell) or fixed scripts sent on
stdin: user text never reaches a shell unquoted.
"""

import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence

from django.conf import settings

from nodes.crypto import SecretBoxError
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
    except SecretBoxError:
        raise NodeCommandError("the node's SSH key cannot be decrypted: the console's secret changed") from None


#: How much of a streamed command's standard error is kept for the result.
_STDERR_KEEP = 64 * 1024


def stream_on_node(node, command: Sequence[str] | str, on_line: Callable[[str], None], *,
                   stdin: str | None = None, timeout: float | None = None) -> CommandResult:
    """Run ``command`` on ``node`` and hand each line of its standard output to ``on_line`` as it comes.

    For long commands that report progress (checksum verification). Lines are passed without their
    newline; the result's ``stdout`` is empty. Errors as in :func:`run_on_node`; an exception raised
    by ``on_line`` stops the command and propagates.
    """
    timeout = timeout or float(settings.CONSOLE_SSH_COMMAND_TIMEOUT_S)
    text = command if isinstance(command, str) else quote_argv(list(command))
    if node.transport == "local":
        return _stream_local(text, on_line, stdin, timeout)
    from nodes.probes.runner import ssh_target

    if node.credential_id is None:
        raise NodeCommandError("no SSH credential is set for this node")
    try:
        return POOL.stream(ssh_target(node), text, stdin=stdin, timeout=timeout, on_stdout_line=on_line)
    except SSHError as exc:
        raise NodeCommandError(exc.reason) from None
    except SecretBoxError:
        raise NodeCommandError("the node's SSH key cannot be decrypted: the console's secret changed") from None


def _stream_local(text: str, on_line: Callable[[str], None], stdin: str | None, timeout: float) -> CommandResult:
    """The local half of :func:`stream_on_node`: a subprocess in its own process group."""
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(
                ["bash", "-c", text], stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=errors, start_new_session=True,
            )
        except OSError as exc:
            raise NodeCommandError(f"the command could not run: {exc}") from None
        expired = threading.Event()

        def kill() -> None:
            # The whole group: bash may have started children (sha256sum) that hold stdout open.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        def expire() -> None:
            expired.set()
            kill()

        watchdog = threading.Timer(timeout, expire)
        watchdog.daemon = True
        watchdog.start()
        if stdin is not None:
            # A thread, so that a command that prints before reading all of its input cannot deadlock.
            def feed() -> None:
                try:
                    proc.stdin.write(stdin.encode("utf-8"))
                    proc.stdin.close()
                except OSError:
                    pass

            threading.Thread(target=feed, daemon=True).start()
        try:
            for raw in proc.stdout:
                on_line(raw.rstrip(b"\n").decode("utf-8", errors="replace"))
            code = proc.wait()
        except BaseException:
            kill()
            proc.wait()
            raise
        finally:
            watchdog.cancel()
            proc.stdout.close()
        if expired.is_set():
            raise NodeCommandError(f"the command did not finish within {timeout:g} s")
        errors.seek(0)
        stderr = errors.read(_STDERR_KEEP).decode("utf-8", errors="replace")
    return CommandResult("", stderr, code, "")

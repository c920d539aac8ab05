"""The shell side of the executor: one launcher script for every node, and the supervisor it starts.

Both are files next to this module, ``launcher.sh`` and ``supervise.sh`` (checked by shellcheck), read
once at import. ``LAUNCHER_SH`` (the launcher with the supervisor in a heredoc) is sent to ``bash -s``
on the node through its transport (locally a subprocess's stdin, remotely the SSH channel's stdin),
followed by one call::

    boom_main <<'BOOM_PAYLOAD'
    <base64 of NUL-separated fields: operation, then its arguments>
    BOOM_PAYLOAD

Nothing a user typed ever reaches a shell parser: the command line is the fixed ``bash -s``, the
heredoc body is base64 (it cannot contain the delimiter or any shell syntax), and the decoded fields
are read into bash arrays with ``read -d ''`` and used only as quoted expansions (``"${argv[@]}"``).
Environment values therefore never appear on any process's command line either (they may carry
tokens), and the engine's argv reaches ``execve`` word for word.

Operations (``boom_main``'s first field; ``base`` is the instance base directory, absolute or ``~/...``):
``start base key cwd settle_ms nenv env... argv...``, ``status base key``, ``stop base key grace_ms``,
``tail base key lines previous max_bytes``, ``cleanup base key``, ``ports port...``,
``write base key name content [name content]...`` (files an engine needs, into its instance directory)
and ``list base`` (the instance directories there). Each prints ``__BOOM_OUTPUT__`` and then its
answer (``name=value`` lines, a log tail, or one item a line) and exits 0, or exits with one of the
``EXIT_*`` codes below and a ``boom: <reason>`` line on stderr.

Requirements on the node: bash, coreutils (``base64``, ``date``, ``sleep`` with fractions, ``mv``,
``rm``, ``mkdir``, ``tail``, ``tr``), ``grep``, ``awk``, util-linux ``setsid`` (``flock`` optional) and
``/proc``. No Python.

Per-instance directory ``<base>/<instance_key>/`` (mode 0700):

=================  ==========================================================================
``pid``            the engine's pid, which is also its session and process-group id
``supervisor_pid`` the supervising bash that waits for the engine and records its exit
``generation``     run counter, incremented by each start
``started_at``     epoch seconds (node clock) of the start
``spec``           NUL-separated key, generation, cwd, env count, env pairs, argv (mode 0600)
``log``            the engine's stdout and stderr, plus one ``[boom]`` line when it ends
``log.1``          the previous run's ``log``, moved aside by the next start
``exit_status``    three lines once the engine ended: exit code (128+N for signal N), ended_at,
                   OOM hint (``1``, ``0`` or empty when unknown)
``supervise.sh``   ``SUPERVISOR_SH``, rewritten at every start
(engine files)     what ``write`` put there (MindIE's ``config.json``), mode 0600
=================  ==========================================================================

The engine runs as ``setsid -- argv...`` from a subshell of the supervisor, so its pid is the one
``$!`` gives (``setsid`` does not fork when the caller is not a group leader) and it leads its own
session and process group: ``stop`` signals the whole group. It carries ``BOOM_INSTANCE`` and
``BOOM_GENERATION`` in its environment; "ours" means ``/proc/<pid>/environ`` holds both, which a
recycled pid does not. Its children inherit the marker, so ``stop`` also finds those that left the
group (``grep -z`` over ``/proc/*/environ``).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "EXIT_ALREADY_RUNNING",
    "EXIT_INVALID",
    "EXIT_LAUNCH_FAILED",
    "EXIT_STILL_RUNNING",
    "LAUNCHER_SH",
    "OUTPUT_MARKER",
    "PAYLOAD_DELIMITER",
    "SUPERVISOR_SH",
]

PAYLOAD_DELIMITER = "BOOM_PAYLOAD"
OUTPUT_MARKER = "__BOOM_OUTPUT__"
SUPERVISOR_DELIMITER = "BOOM_SUPERVISOR_END"

_HERE = Path(__file__).resolve().parent
SUPERVISOR_SH = (_HERE / "supervise.sh").read_text(encoding="utf-8")
_LAUNCHER_TEMPLATE = (_HERE / "launcher.sh").read_text(encoding="utf-8")


def _exit_code(name: str) -> int:
    """An exit code as ``launcher.sh`` defines it (``BOOM_EXIT_<name>=<n>`` on a line of its own)."""
    found = re.search(rf"^BOOM_EXIT_{name}=(\d+)$", _LAUNCHER_TEMPLATE, re.MULTILINE)
    if found is None:
        raise AssertionError(f"launcher.sh does not define BOOM_EXIT_{name}")
    return int(found[1])


# Exit codes of the launcher (mapped to exceptions in base.py).
EXIT_INVALID = _exit_code("INVALID")
EXIT_ALREADY_RUNNING = _exit_code("ALREADY_RUNNING")
EXIT_LAUNCH_FAILED = _exit_code("LAUNCH_FAILED")
EXIT_STILL_RUNNING = _exit_code("STILL_RUNNING")


def _render() -> str:
    if SUPERVISOR_DELIMITER in SUPERVISOR_SH or PAYLOAD_DELIMITER in SUPERVISOR_SH + _LAUNCHER_TEMPLATE:
        raise AssertionError("a script contains one of the launcher's heredoc delimiters")
    if _LAUNCHER_TEMPLATE.count("__SUPERVISOR__") != 1:
        raise AssertionError("launcher.sh must hold the __SUPERVISOR__ placeholder once")
    return _LAUNCHER_TEMPLATE.replace("__SUPERVISOR__", SUPERVISOR_SH.rstrip("\n"))


LAUNCHER_SH = _render()

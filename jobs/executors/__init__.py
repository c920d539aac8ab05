"""Executors: where and how an engine process runs (a local subprocess, or over SSH).

``EXECUTORS`` maps a node's transport to its executor class; ``make_executor`` builds one::

    make_executor("local", base_dir=data_dir / "instances")
    make_executor("ssh", shell=functools.partial(POOL.run, target))

See ``base.py`` for the interface and ``launcher_sh.py`` for what runs on the node.
"""

from .base import (
    AlreadyRunning,
    Executor,
    ExecutorError,
    ExecutorTimeout,
    InvalidSpec,
    ProcessHandle,
    ProcessSpec,
    ProcessStatus,
    Shell,
    StillRunning,
    validate_instance_key,
)
from .local import LocalExecutor
from .ssh import DEFAULT_REMOTE_BASE, SSHExecutor

EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "ssh": SSHExecutor}


def make_executor(kind: str, **kwargs) -> Executor:
    """An executor of ``kind`` ("local" or "ssh"), constructed with ``kwargs``."""
    try:
        cls = EXECUTORS[kind]
    except KeyError:
        raise ValueError(f"unknown executor kind {kind!r}") from None
    return cls(**kwargs)


__all__ = [
    "DEFAULT_REMOTE_BASE",
    "EXECUTORS",
    "AlreadyRunning",
    "Executor",
    "ExecutorError",
    "ExecutorTimeout",
    "InvalidSpec",
    "LocalExecutor",
    "ProcessHandle",
    "ProcessSpec",
    "ProcessStatus",
    "SSHExecutor",
    "Shell",
    "StillRunning",
    "make_executor",
    "validate_instance_key",
]

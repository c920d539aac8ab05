"""The engines the console knows, by the ``engine`` name a job stores.

A plug-in family in the style of Healthchecks' transports: one module per engine, one instance of
each here. Placement and forms read :data:`ENGINES`; services call :func:`get_engine`.
"""

from __future__ import annotations

from jobs.engines.base import Engine
from jobs.engines.llamacpp import LlamaCppEngine
from jobs.engines.mindie import MindieEngine
from jobs.engines.sglang import SglangEngine
from jobs.engines.simulator import SimulatorEngine
from jobs.engines.vllm import VllmEngine
from jobs.engines.vllm_ascend import VllmAscendEngine

__all__ = ["ENGINES", "UnknownEngine", "engine_choices", "engines_for_vendor", "get_engine"]


class UnknownEngine(ValueError):
    """An engine name that is not in :data:`ENGINES`."""


#: Engine name -> engine, in the order forms list them.
ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        VllmEngine(),
        VllmAscendEngine(),
        SglangEngine(),
        MindieEngine(),
        LlamaCppEngine(),
        SimulatorEngine(),
    )
}


def get_engine(name: str) -> Engine:
    """The engine called ``name``; :class:`UnknownEngine` (a ``ValueError``) naming the known ones."""
    try:
        return ENGINES[name]
    except (KeyError, TypeError):
        known = ", ".join(ENGINES)
        raise UnknownEngine(f"unknown engine {name!r}; known engines: {known}") from None


def engine_choices() -> list[tuple[str, str]]:
    """``(name, label)`` pairs for a form or a ``choices`` argument."""
    return [(name, engine.label) for name, engine in ENGINES.items()]


def engines_for_vendor(vendor: str | None) -> list[Engine]:
    """Engines that may run on a node of ``vendor`` (``None`` or ``"cpu"``: no accelerators)."""
    key = vendor or "cpu"
    return [engine for engine in ENGINES.values() if key in engine.vendors]

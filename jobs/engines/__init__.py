"""Serving engine adapters (see ``jobs/engines/base.py`` and ``docs/engines.md``)."""

from jobs.engines.registry import ENGINES, UnknownEngine, get_engine

__all__ = ["ENGINES", "UnknownEngine", "get_engine"]

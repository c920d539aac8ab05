"""The simulator engine: ``python -m jobs.simulator``, the console's own OpenAI-compatible server.

It loads no model (``model_path`` is not read) and runs anywhere, CPU-only nodes included. It
exposes vLLM V1's metric names, so its scrapes parse as ``vllm-v1``.

The module lives in this repository: on an SSH node the console checkout must be importable by
``spec.python``. When the job's ``env`` carries ``BOOM_CONSOLE_ROOT`` (the checkout's path on the
node), :meth:`SimulatorEngine.build_env` puts it first on ``PYTHONPATH``; the simulator needs only
aiohttp and prometheus-client besides the standard library.

Every member of a multi-node replica runs its own simulator and answers HTTP, which lets tests
exercise multi-member start-up and healing without real accelerators.
"""

from __future__ import annotations

import math
from typing import Any

from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from jobs.engines.base import Engine, ErrorHint, LaunchSpec

#: ``spec.simulator`` key -> (flag, type, smallest value, largest value or None).
SIMULATOR_OPTIONS: dict[str, tuple[str, type, float | None, float | None]] = {
    "ttft_ms": ("--ttft-ms", float, 0, None),
    "tpot_ms": ("--tpot-ms", float, 0, None),
    "batch_slowdown": ("--batch-slowdown", float, 0, None),
    "max_concurrency": ("--max-concurrency", int, 1, None),
    "startup_s": ("--startup-s", float, 0, None),
    "seed": ("--seed", int, None, None),
    "kv_cache_tokens": ("--kv-cache-tokens", int, 1, None),
    "crash_after": ("--crash-after", int, 0, None),
    "crash_exit_code": ("--crash-exit-code", int, 0, 255),
    "drain_s": ("--drain-s", float, 0, None),
}

SIMULATOR_HINTS: tuple[ErrorHint, ...] = (
    ErrorHint.of(
        r"boom-simulator: cannot listen on \S+?:(\d+): [^\n]*Address already in use",
        gettext_noop("port {0} already in use: another process listens on it"),
    ),
)


class SimulatorEngine(Engine):
    """The simulated engine (always labelled as such in the UI and API)."""

    name = "simulator"
    label = _("Simulator")
    vendors = frozenset({"nvidia", "huawei", "cpu"})
    needs_accelerators = False
    supported_quantizations = None
    supports_multinode = True
    needs_master_port = False
    controlled_flags = frozenset({"--host", "--port", "--model"})
    overridable_flags = frozenset({"--max-model-len"})
    dtype_flag = None
    hints = SIMULATOR_HINTS
    loads_weights = False
    job_options = SIMULATOR_OPTIONS

    def build_argv(self, spec: LaunchSpec) -> list[str]:
        """``python -m jobs.simulator --host H --port P --model NAME [options...] EXTRA...``."""
        argv = [
            spec.python,
            "-m",
            "jobs.simulator",
            "--host",
            spec.host,
            "--port",
            str(spec.port),
            "--model",
            spec.served_name,
        ]
        options = spec.simulator or {}
        for key, (flag, _kind, _low, _high) in SIMULATOR_OPTIONS.items():
            if key in options and options[key] is not None:
                argv += [flag, str(options[key])]
        if spec.max_model_len and not self.user_sets(spec, "--max-model-len"):
            argv += ["--max-model-len", str(spec.max_model_len)]
        argv += list(spec.extra_args)
        return argv

    def build_env(self, spec: LaunchSpec) -> dict[str, str]:
        """The base variables plus ``PYTHONPATH`` led by ``BOOM_CONSOLE_ROOT`` when the job sets it."""
        env = super().build_env(spec)
        root = env.get("BOOM_CONSOLE_ROOT")
        if root:
            existing = env.get("PYTHONPATH")
            env["PYTHONPATH"] = f"{root}:{existing}" if existing else root
        return env

    def serves_http(self, spec: LaunchSpec) -> bool:
        """Every simulator member answers HTTP, whatever its rank."""
        return True

    def validate_more(self, spec: LaunchSpec, add: Any) -> None:
        """Known simulator options with values of the right type and range."""
        options = spec.simulator
        if options is None:
            return
        if not isinstance(options, dict):
            add("simulator", 'simulator options must be an object such as {"ttft_ms": 80}')
            return
        for key, value in options.items():
            if key not in SIMULATOR_OPTIONS:
                known = ", ".join(SIMULATOR_OPTIONS)
                add("simulator", f"unknown simulator option {key!r}; known: {known}")
                continue
            if value is None:
                continue
            _flag, kind, low, high = SIMULATOR_OPTIONS[key]
            ok_type = isinstance(value, int | float) if kind is float else isinstance(value, int)
            if isinstance(value, bool) or not ok_type:
                add("simulator", f"{key} must be {'a number' if kind is float else 'an integer'}, not {value!r}")
            elif not math.isfinite(value):
                add("simulator", f"{key} must be a finite number, not {value!r}")
            elif (low is not None and value < low) or (high is not None and value > high):
                bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
                add("simulator", f"{key} must be {bounds}, not {value!r}")
        if spec.max_model_len is not None and isinstance(spec.max_model_len, int) and spec.max_model_len < 2:
            add("max_model_len", "the simulator needs max_model_len of at least 2")

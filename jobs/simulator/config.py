"""The simulator's settings and the command line that sets them (each option also read from a
``BOOM_SIM_<OPTION>`` environment variable); ``python -m jobs.simulator --help`` lists them."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any


@dataclass
class SimulatorConfig:
    """Everything the command line sets; see ``python -m jobs.simulator --help``."""

    model: str = "simulator"
    host: str = "127.0.0.1"
    port: int = 8000
    ttft_ms: float = 80.0
    tpot_ms: float = 15.0
    batch_slowdown: float = 0.004
    max_concurrency: int = 256
    startup_s: float = 0.0
    seed: int = 0
    max_model_len: int = 8192
    kv_cache_tokens: int = 65536
    crash_after: int = 0  # exit after this many finished inference requests; 0: never
    crash_exit_code: int = 1
    drain_s: float = 0.5


def _env(name: str, default: Any) -> Any:
    return os.environ.get(f"BOOM_SIM_{name.upper()}", default)


def build_arg_parser() -> argparse.ArgumentParser:
    """The command line; each option's default may come from ``BOOM_SIM_<OPTION>``."""
    parser = argparse.ArgumentParser(
        prog="python -m jobs.simulator",
        description="BooM Console's simulated inference engine: OpenAI-compatible, vLLM metric names.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = SimulatorConfig()
    add = parser.add_argument
    add("--host", default=_env("host", d.host), help="address to listen on")
    add(
        "--port",
        type=int,
        default=_env("port", d.port),
        help="port; 0 picks a free one",
    )
    add("--model", default=_env("model", d.model), help="served model name")
    add("--ttft-ms", type=float, default=_env("ttft_ms", d.ttft_ms), help="base time to first token")
    add("--tpot-ms", type=float, default=_env("tpot_ms", d.tpot_ms), help="base time per output token")
    add(
        "--batch-slowdown",
        type=float,
        default=_env("batch_slowdown", d.batch_slowdown),
        help="latency grows by this fraction per running request",
    )
    add("--max-concurrency", type=int, default=_env("max_concurrency", d.max_concurrency),
        help="requests run at once; more wait in the queue")  # fmt: skip
    add("--startup-s", type=float, default=_env("startup_s", d.startup_s), help="seconds /health answers 503")
    add("--seed", type=int, default=_env("seed", d.seed), help="seed of the generated words")
    add("--max-model-len", type=int, default=_env("max_model_len", d.max_model_len), help="context length")
    add("--kv-cache-tokens", type=int, default=_env("kv_cache_tokens", d.kv_cache_tokens),
        help="tokens the simulated KV cache holds")  # fmt: skip
    add("--crash-after", type=int, default=_env("crash_after", d.crash_after),
        help="exit after this many finished requests (0: never)")  # fmt: skip
    add("--crash-exit-code", type=int, default=_env("crash_exit_code", d.crash_exit_code),
        help="exit code of a simulated crash")  # fmt: skip
    add(
        "--drain-s",
        type=float,
        default=_env("drain_s", d.drain_s),
        help="grace for running requests on SIGTERM",
    )
    return parser


def config_from_args(argv: list[str] | None) -> SimulatorConfig:
    """Parse and check the command line; exits with status 2 and a message when a value is wrong."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    checks = [
        (args.ttft_ms >= 0, "--ttft-ms must not be negative"),
        (args.tpot_ms >= 0, "--tpot-ms must not be negative"),
        (args.batch_slowdown >= 0, "--batch-slowdown must not be negative"),
        (args.max_concurrency >= 1, "--max-concurrency must be at least 1"),
        (args.startup_s >= 0, "--startup-s must not be negative"),
        (0 <= args.port <= 65535, "--port must be from 0 to 65535"),
        (args.max_model_len >= 2, "--max-model-len must be at least 2"),
        (args.kv_cache_tokens >= 1, "--kv-cache-tokens must be at least 1"),
        (args.crash_after >= 0, "--crash-after must not be negative"),
        (0 <= args.crash_exit_code <= 255, "--crash-exit-code must be from 0 to 255"),
        (args.drain_s >= 0, "--drain-s must not be negative"),
        (bool(args.model), "--model must not be empty"),
    ]
    for ok, message in checks:
        if not ok:
            parser.error(message)
    return SimulatorConfig(**{k: v for k, v in vars(args).items()})

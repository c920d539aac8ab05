"""Glue between the job models and the adapters: which executor reaches a node, what an instance's
engine command line is, and whether an instance answers."""

from urllib.parse import urlparse

import httpx
from django.conf import settings

from jobs import weights
from jobs.engines.base import LaunchSpec
from jobs.engines.registry import get_engine
from jobs.executors import Executor
from nodes.transports import transport_for


def executor_for(node):
    """The executor that runs processes on ``node``, over its transport (``nodes.transports.TRANSPORTS``)."""
    return Executor(transport_for(node), timeout_s=float(settings.CONSOLE_EXECUTOR_TIMEOUT_S))


def model_path(version, node=None) -> str:
    """The path an engine loads: the directory (or file) of the version's ready copy on ``node`` when
    there is one (jobs.weights), else the version's own directory, or the hub id. For a GGUF version
    whose path is a directory: its GGUF file in it (the first shard of a split one)."""
    uri = version.source_uri
    parsed = urlparse(uri)
    if parsed.scheme in ("hf", "modelscope"):
        return (parsed.netloc + parsed.path).split("@")[0]
    path = weights.path_on(version, node) or (parsed.path if parsed.scheme == "file" else uri)
    if version.format == "gguf" and not path.lower().endswith(".gguf") and version.pk:
        ggufs = sorted(version.files.filter(path__iendswith=".gguf").values_list("path", flat=True))
        if ggufs:
            path = f"{path.rstrip('/')}/{ggufs[0]}"
    return path


def reach_host(node) -> str:
    """The address at which the console reaches services (engines) on ``node``."""
    return transport_for(node).connect_host


def launch_spec(instance, accelerators, members=None, workdir: str | None = None):
    """The engine LaunchSpec of one instance."""
    job = instance.job
    node = instance.node
    members = members or [instance]
    leader = next((m for m in members if m.member == 0), instance)
    transport = transport_for(node)
    python = job.options.get("python") or transport.python
    env = {str(k): str(v) for k, v in (job.env or {}).items()}
    env.update(job.secret_env())  # secret entries reach the engine's environment only (docs/jobs.md)
    env.setdefault("BOOM_CONSOLE_ROOT", str(settings.BASE_DIR))

    vendor = accelerators[0].vendor if accelerators else None
    engine_options = get_engine(job.engine).job_options
    simulator = {k: v for k, v in (job.options or {}).items() if k in engine_options}
    multinode = job.nodes_per_replica > 1
    return LaunchSpec(
        model_path=model_path(job.model_version, node),
        served_name=job.options.get("served_name") or job.name,
        # Members of a replica spanning nodes bind the node's own address (HCCL/MindIE need a concrete one).
        host=transport.connect_host if multinode else transport.bind_host,
        port=instance.port,
        vendor=vendor,
        accelerator_ids=[a.index for a in accelerators],
        tensor_parallel=max(1, job.accelerators_per_replica)
        if job.nodes_per_replica == 1
        else max(1, job.accelerators_per_replica * job.nodes_per_replica),
        pipeline_parallel=1,
        quantization=job.model_version.quantization or None,
        dtype=job.model_version.dtype or None,
        max_model_len=job.max_model_len,
        extra_args=list(job.extra_args or []),
        env=env,
        python=python,
        workdir=workdir,
        nnodes=job.nodes_per_replica,
        node_rank=instance.member,
        master_addr=reach_host(leader.node) if multinode and leader.node else None,
        master_port=(leader.port + 1) if multinode and leader.port else None,
        simulator=simulator,
        cpu_cores=[int(core) for core in (instance.cpu_cores or [])] if vendor is None else [],
    )


def check_ready(engine, instance, timeout: float = 2.0) -> tuple[bool, str]:
    """GET the engine's readiness URL. (ready, why-not)."""
    url = engine.readiness_url(reach_host(instance.node), instance.port)
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.TimeoutException:
        return False, f"readiness check timed out after {timeout:g} s ({url})"
    except httpx.HTTPError as exc:
        return False, f"readiness check failed: {exc.__class__.__name__} ({url})"
    if response.status_code == 200:
        return True, ""
    return False, f"readiness check answered {response.status_code} ({url})"


"""Glue between the job models and the adapters: which executor reaches a node, what an instance's
engine command line is, and whether an instance answers."""

import sys
from urllib.parse import urlparse

import httpx
from django.conf import settings

from nodes.remote import run_on_node


def executor_for(node):
    """The executor that runs processes on ``node``: local subprocesses or SSH."""
    from jobs.executors.local import LocalExecutor
    from jobs.executors.ssh import SSHExecutor

    if node.transport == "local":
        return LocalExecutor(settings.DATA_DIR / "instances")

    def shell(command, *, stdin=None, timeout=30.0):
        return run_on_node(node, command, stdin=stdin, timeout=timeout)

    return SSHExecutor(shell, base_dir=settings.CONSOLE_REMOTE_INSTANCE_DIR,
                       timeout_s=float(settings.CONSOLE_EXECUTOR_TIMEOUT_S))


def model_path(version) -> str:
    """The path an engine loads: the version's directory (or file) on the node, or the hub id."""
    uri = version.source_uri
    parsed = urlparse(uri)
    if parsed.scheme in ("hf", "modelscope"):
        return (parsed.netloc + parsed.path).split("@")[0]
    if parsed.scheme == "file":
        return parsed.path
    return uri


def bind_host(node) -> str:
    return "127.0.0.1" if node.transport == "local" else "0.0.0.0"


def reach_host(node) -> str:
    return "127.0.0.1" if node.transport == "local" else node.address


def launch_spec(instance, accelerators, members=None, workdir: str | None = None):
    """The engine LaunchSpec of one instance."""
    from jobs.engines.base import LaunchSpec

    job = instance.job
    node = instance.node
    members = members or [instance]
    leader = next((m for m in members if m.member == 0), instance)
    python = job.options.get("python") or (sys.executable if node.transport == "local" else "python3")
    env = {str(k): str(v) for k, v in (job.env or {}).items()}
    env.setdefault("BOOM_CONSOLE_ROOT", str(settings.BASE_DIR))
    from jobs.engines.registry import get_engine

    vendor = accelerators[0].vendor if accelerators else None
    engine_options = get_engine(job.engine).job_options
    simulator = {k: v for k, v in (job.options or {}).items() if k in engine_options}
    multinode = job.nodes_per_replica > 1
    return LaunchSpec(
        model_path=model_path(job.model_version),
        served_name=job.options.get("served_name") or job.name,
        # Members of a replica spanning nodes bind the node's own address (HCCL/MindIE need a concrete one).
        host=reach_host(node) if multinode else bind_host(node),
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


# The login's home on each node, asked once: keyed by where and as whom we log in, so an edited node asks again.
_HOMES: dict[tuple, str] = {}
WRITE_FILE_SCRIPT = 'umask 027; mkdir -p -- "$1" && cat > "$1/$2"'


def instance_workdir(node, key: str) -> str:
    """The absolute per-instance directory on the node (the executor's, where engine files go)."""
    base = str(settings.DATA_DIR / "instances") if node.transport == "local" else settings.CONSOLE_REMOTE_INSTANCE_DIR
    if base.startswith("~/"):
        login = (node.pk, node.address, node.ssh_port, node.effective_ssh_user)
        if login not in _HOMES:
            _HOMES[login] = run_on_node(node, 'printf %s "$HOME"', timeout=10).stdout.strip()
        base = _HOMES[login] + base[1:]
    return f"{base.rstrip('/')}/{key}"


def write_instance_files(node, workdir: str, files: dict[str, str]) -> None:
    """Write the files an engine needs (MindIE's config.json) into the instance directory, each through a
    fixed script with the directory and name as arguments and the content on stdin."""
    for name, content in files.items():
        result = run_on_node(node, ["bash", "-c", WRITE_FILE_SCRIPT, "write", workdir, name], stdin=content,
                             timeout=20)
        if result.exit_code != 0:
            raise OSError(f"could not write {name} in {workdir}: {result.stderr.strip()[:200]}")

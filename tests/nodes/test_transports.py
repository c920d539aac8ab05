"""The transport registry and both transports: the console's own machine (subprocesses) and SSH (a real
sshd on loopback, tests/sshd.py). The executor's operations over both are in tests/jobs/test_executors.py."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from nodes import services
from nodes.choices import Transport as TransportChoice
from nodes.models import Credential, Node
from nodes.transports import (
    TRANSPORTS,
    LocalTransport,
    NodeCommandError,
    SSHTransport,
    UnknownTransport,
    transport_for,
)
from nodes.transports.base import _HOMES
from nodes.transports.ssh import POOL, SSHError, SSHPool, SSHTarget
from tests.sshd import SshdNode, free_port, require_sshd
from tests.timing import scaled

# --------------------------------------------------------------------------- the registry


def test_the_registry_has_one_class_per_node_choice():
    assert set(TRANSPORTS) == set(TransportChoice.values)
    for kind, cls in TRANSPORTS.items():
        assert cls.kind == kind


def test_an_unknown_transport_is_a_clear_error():
    node = SimpleNamespace(name="gpu-07", transport="k8s")
    with pytest.raises(UnknownTransport) as caught:
        transport_for(node)
    assert "gpu-07" in caught.value.reason and "'k8s'" in caught.value.reason
    assert "local, ssh" in caught.value.reason
    # Callers that handle an unreachable node handle it too; it is also a ValueError.
    assert isinstance(caught.value, NodeCommandError) and isinstance(caught.value, ValueError)


@pytest.mark.django_db
def test_the_transport_of_the_local_node(settings):
    transport = transport_for(services.register_local_node())
    assert isinstance(transport, LocalTransport)
    assert transport.is_local and transport.kind == "local"
    assert transport.bind_host == "127.0.0.1" and transport.connect_host == "127.0.0.1"
    assert transport.python == sys.executable
    assert transport.instance_dir == str(settings.DATA_DIR / "instances")
    assert transport.command_timeout == settings.CONSOLE_SSH_COMMAND_TIMEOUT_S


@pytest.mark.django_db
def test_the_transport_of_an_ssh_node_asks_nothing_of_its_key_until_it_runs_a_command(settings):
    settings.CONSOLE_REMOTE_INSTANCE_DIR = "~/elsewhere/instances"
    credential = Credential.objects.create(name="broken", username="ops", encrypted_private_key="not-a-token")
    node = Node.objects.create(name="npu-01", address="10.0.0.9", transport="ssh", ssh_port=2222,
                               credential=credential)
    transport = transport_for(node)
    assert isinstance(transport, SSHTransport)
    assert not transport.is_local and transport.kind == "ssh"
    assert transport.bind_host == "0.0.0.0" and transport.connect_host == "10.0.0.9"
    assert transport.python == "python3"
    assert transport.instance_dir == "~/elsewhere/instances"
    assert transport.login == ("ssh", "10.0.0.9", 2222, "ops")
    # The key cannot be decrypted (the console's secret changed): only a command finds out.
    with pytest.raises(NodeCommandError, match="cannot be decrypted"):
        transport.run("true")


@pytest.mark.django_db
def test_an_ssh_node_without_a_credential_cannot_run_commands():
    node = Node.objects.create(name="npu-02", address="10.0.0.10", transport="ssh")
    with pytest.raises(NodeCommandError, match="no SSH credential"):
        transport_for(node).run(["true"])


@pytest.mark.django_db
def test_an_instance_endpoint_asks_the_transport(settings):
    from jobs.models import Instance

    local = services.register_local_node()
    remote = Node.objects.create(name="gpu-01", address="10.0.0.21", transport="ssh")
    assert Instance(node=local, port=8001, member=0).endpoint == "http://127.0.0.1:8001/v1"
    assert Instance(node=remote, port=8001, member=0).endpoint == "http://10.0.0.21:8001/v1"


# --------------------------------------------------------------------------- the local transport


def test_local_run_sends_stdin_and_quotes_argv(tmp_path):
    transport = LocalTransport(instance_dir=tmp_path)
    result = transport.run(["printf", "%s|", "a b", "$(touch x)"], timeout=10)
    assert result.stdout == "a b|$(touch x)|" and result.exit_code == 0 and result.host_key == ""
    result = transport.run("cat; echo err >&2; exit 3", stdin="from stdin\n", timeout=10)
    assert (result.stdout, result.stderr, result.exit_code) == ("from stdin\n", "err\n", 3)
    assert not (tmp_path / "x").exists()


def test_local_commands_do_not_see_the_consoles_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSOLE_SECRET_KEY", "do-not-leak")
    monkeypatch.setenv("BOOM_VISIBLE", "yes")
    out = LocalTransport(instance_dir=tmp_path).run("env", timeout=10).stdout
    assert "BOOM_VISIBLE=yes" in out and "do-not-leak" not in out


def _running(marker: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                return True
        except OSError:
            pass
    return False


def test_a_local_command_that_runs_too_long_is_killed_with_its_children(tmp_path):
    marker = f"boom-test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    with pytest.raises(NodeCommandError, match="did not finish within 1 s"):
        LocalTransport(instance_dir=tmp_path).run(f"(exec -a {marker}-child sleep 30) & exec -a {marker} sleep 31",
                                                  timeout=1)
    assert time.monotonic() - started < scaled(8, below=30)  # killed at its 1 s timeout, not after the sleep
    deadline = time.monotonic() + scaled(3, below=30)
    while _running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(marker)


def test_the_local_home_and_instance_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    transport = LocalTransport(instance_dir="~/instances")
    assert transport.instance_dir == str(tmp_path / "instances")
    assert transport.home() == str(tmp_path) and transport.expand("~/x") == f"{tmp_path}/x"


# --------------------------------------------------------------------------- the SSH transport


@pytest.fixture(scope="module")
def sshd_node():
    require_sshd()
    node = SshdNode()
    node.start()
    yield node
    node.cleanup()


@pytest.fixture
def pool():
    pool = SSHPool()
    yield pool
    pool.close_all()


@pytest.mark.integration
def test_ssh_run_and_stream(sshd_node, pool):
    transport = SSHTransport(sshd_node.target(), pool=pool, instance_dir="~/i")
    result = transport.run(["printf", "%s|", "a b", "$(c)"], timeout=10)
    assert result.stdout == "a b|$(c)|" and result.host_key == sshd_node.host_key_line
    assert transport.run("cat", stdin="in\n", timeout=10).stdout == "in\n"
    lines = []
    result = transport.stream("echo one; echo two; exit 2", lines.append, timeout=10)
    assert lines == ["one", "two"] and result.exit_code == 2
    assert pool.connections_opened == 1


@pytest.mark.integration
def test_ssh_home_is_asked_once_per_login(sshd_node, pool):
    transport = SSHTransport(sshd_node.target(), pool=pool, instance_dir="~/i")
    _HOMES.pop(transport.login, None)
    assert transport.home() == os.path.expanduser("~")
    assert transport.expand("~/.boom/instances") == os.path.expanduser("~/.boom/instances")
    assert transport.expand("/abs") == "/abs"
    assert _HOMES[transport.login] == os.path.expanduser("~")


@pytest.mark.integration
def test_ssh_errors_are_node_command_errors(pool):
    closed = SSHTarget(host="127.0.0.1", port=free_port(), username="nobody", private_key="", passphrase=None,
                       pinned_host_key=None, connect_timeout=2)
    with pytest.raises(NodeCommandError) as caught:
        SSHTransport(closed, pool=pool).run("true", timeout=5)
    assert isinstance(caught.value, SSHError) and "127.0.0.1" in caught.value.reason


@pytest.mark.integration
@pytest.mark.django_db
def test_an_ssh_node_runs_commands_through_the_shared_pool(admin_api, sshd_node):
    credential = admin_api.post("/api/v1/credentials/", {"name": "t-key", "username": sshd_node.username,
                                                         "private_key": sshd_node.client_key_pem}, format="json")
    assert credential.status_code == 201, credential.content
    response = admin_api.post("/api/v1/nodes/", {"name": "t-node", "address": "127.0.0.1", "transport": "ssh",
                                                  "ssh_port": sshd_node.port,
                                                  "credential": credential.json()["id"]}, format="json")
    assert response.status_code == 201, response.content
    node = Node.objects.get(pk=response.json()["id"])
    try:
        result = transport_for(node).run(["echo", "hello"], timeout=10)
        assert result.stdout == "hello\n" and result.host_key == sshd_node.host_key_line
    finally:
        POOL.close_all()


def test_a_file_pumped_between_two_process_pipes_moves_in_the_kernel_and_arrives_whole(tmp_path, monkeypatch):
    from models_registry.services import transfer
    from nodes.transports.local import ProcessPipe

    source = tmp_path / "shard.bin"
    source.write_bytes(os.urandom(3 << 20) + b"end")
    size = source.stat().st_size
    # Reading into the console is what splicing avoids: it must not happen.
    monkeypatch.setattr(ProcessPipe, "read", lambda self, n: pytest.fail("the bytes went through the console"))
    transport = LocalTransport(instance_dir=tmp_path / "instances")
    seen = []
    transfer.pump(transport, transport, str(source), str(tmp_path / "out" / "shard.bin"), size,
                  transfer.Progress(), transfer.RateLimit(None), timeout=scaled(30), on_chunk=seen.append)
    assert (tmp_path / "out" / "shard.bin").read_bytes() == source.read_bytes()
    assert seen and seen[-1] == size and seen == sorted(seen)


def test_a_pipe_whose_reader_stopped_reading_fails_the_splice_with_the_writers_error(tmp_path):
    transport = LocalTransport(instance_dir=tmp_path / "instances")
    with transport.open_pipe("head -c 100000 /dev/zero", timeout=scaled(20)) as reader, \
            transport.open_pipe("exit 0", timeout=scaled(20)) as writer:
        writer.wait(scaled(20))
        assert reader.splices_to(writer)
        with pytest.raises(NodeCommandError, match="stopped reading its input"):
            while reader.splice_to(writer, 1 << 16):
                pass

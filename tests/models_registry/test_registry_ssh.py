"""Import and verification over a real sshd on loopback (the SSH node is added through the API with
its credential), and the streaming they rely on: ``SSHPool.stream`` and ``Transport.stream`` of a
node's transport, locally and over SSH."""

from __future__ import annotations

import time

import pytest

from console.core.models import Event
from models_registry import services
from nodes.models import Node
from nodes.transports import NodeCommandError, transport_for
from nodes.transports.ssh import POOL, CommandTimeout
from tests.sshd import SshdNode, require_sshd
from tests.timing import scaled

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

URL = "/api/v1/model-versions/"


@pytest.fixture
def sshd():
    require_sshd()
    node = SshdNode(env={"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"})
    node.start()
    yield node
    POOL.close_all()
    node.cleanup()


def add_node(api, sshd, name="npu-01") -> Node:
    credential = api.post("/api/v1/credentials/", {"name": f"{name}-key", "username": sshd.username,
                                                   "private_key": sshd.client_key_pem}, format="json")
    assert credential.status_code == 201, credential.content
    response = api.post("/api/v1/nodes/", {"name": name, "address": "127.0.0.1", "transport": "ssh",
                                           "ssh_port": sshd.port, "credential": credential.json()["id"]},
                        format="json")
    assert response.status_code == 201, response.content
    return Node.objects.get(pk=response.json()["id"])


# --- streaming helpers -------------------------------------------------------------------------


def test_ssh_stream_hands_over_lines_as_they_come(sshd):
    arrivals = []
    started = time.monotonic()
    result = POOL.stream(sshd.target(pinned=False), "echo one; sleep 0.6; printf 'two\\nthree'; echo oops >&2; exit 3",
                         timeout=10, on_stdout_line=lambda line: arrivals.append((line, time.monotonic() - started)))
    assert [line for line, _ in arrivals] == ["one", "two", "three"]
    assert arrivals[1][1] - arrivals[0][1] >= 0.5  # "one" arrived before the sleep, not with the rest
    assert result.exit_code == 3 and result.stdout == "" and result.stderr == "oops\n"


def test_ssh_stream_stops_the_command_when_the_callback_raises(sshd):
    class Stop(Exception):
        pass

    def on_line(line):
        raise Stop

    with pytest.raises(Stop):
        POOL.stream(sshd.target(pinned=False), "while true; do echo tick; sleep 0.1; done", timeout=10,
                    on_stdout_line=on_line)
    # The pooled connection is still usable.
    assert POOL.run(sshd.target(pinned=False), "echo fine", timeout=10).stdout == "fine\n"


def test_ssh_stream_is_bounded_in_time(sshd):
    with pytest.raises(CommandTimeout):
        POOL.stream(sshd.target(pinned=False), "echo start; sleep 30", timeout=1, on_stdout_line=lambda line: None)


def test_run_still_collects_stdout_after_the_streaming_change(sshd):
    result = POOL.run(sshd.target(pinned=False), ["printf", "%s\\n", "a b", "$(c)"], timeout=10)
    assert result.stdout == "a b\n$(c)\n" and result.exit_code == 0


def test_stream_runs_locally_with_lines_stderr_and_exit_code(local_node):
    lines = []
    result = transport_for(local_node).stream(["sh", "-c", "echo 'a b'; echo err >&2; printf last; exit 4"],
                                              lines.append)
    assert lines == ["a b", "last"] and result.exit_code == 4 and result.stderr == "err\n"


def test_stream_locally_kills_a_command_that_runs_too_long(local_node):
    started = time.monotonic()
    with pytest.raises(NodeCommandError, match="did not finish within 1 s"):
        transport_for(local_node).stream(["sh", "-c", "echo x; sleep 30"], lambda line: None, timeout=1)
    assert time.monotonic() - started < scaled(10, below=30)


def test_stream_locally_stops_when_the_callback_raises(local_node):
    with pytest.raises(ZeroDivisionError):
        transport_for(local_node).stream(["sh", "-c", "while true; do echo tick; sleep 0.05; done"],
                                         lambda line: 1 / 0)


def test_stream_over_ssh(admin_api, sshd):
    node = add_node(admin_api, sshd)
    lines = []
    result = transport_for(node).stream(["sh", "-c", "echo hello; echo world"], lines.append, timeout=10)
    assert lines == ["hello", "world"] and result.exit_code == 0


# --- import and verify over SSH ------------------------------------------------------------------


def test_a_version_on_an_ssh_node_is_imported_and_verified_over_ssh(
        admin_api, operator_api, sshd, model, safetensors_dir, django_capture_on_commit_callbacks):
    node = add_node(admin_api, sshd)
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_api.post(URL, {"model": model.pk, "version": "bf16", "source_uri": str(safetensors_dir),
                                        "node": node.pk}, format="json")
    assert response.status_code == 201, response.content
    version_id = response.json()["id"]
    services.import_version(version_id)  # what the worker's task does
    version = admin_api.get(f"{URL}{version_id}/").json()
    assert version["status"] == "registered" and version["importing"] is False, version["status_detail"]
    assert version["file_count"] == 4 and version["node_name"] == "npu-01" and version["parameters"] > 0

    with django_capture_on_commit_callbacks(execute=False):
        assert operator_api.post(f"{URL}{version_id}/verify/").status_code == 202
    services.verify_version(version_id)
    version = admin_api.get(f"{URL}{version_id}/").json()
    assert version["status"] == "verified" and version["progress"] == 1, version["status_detail"]
    local_twin = services.manifest_digest({f["path"]: f["sha256"] for f in
                                           admin_api.get(f"{URL}{version_id}/files/").json()["results"]})
    assert version["sha256"] == local_twin

    # A change on the node after verification fails the next verification and raises an event.
    with open(safetensors_dir / "config.json", "a") as f:
        f.write("\n")
    with django_capture_on_commit_callbacks(execute=False):
        assert operator_api.post(f"{URL}{version_id}/verify/").status_code == 202
    services.verify_version(version_id)
    version = admin_api.get(f"{URL}{version_id}/").json()
    assert version["status"] == "failed" and "config.json" in version["status_detail"]
    assert Event.objects.filter(verb="integrity", object_id=str(version_id)).exists()


def test_a_file_modified_while_it_is_hashed_over_ssh_fails_naming_it(admin_api, sshd, model, safetensors_dir):
    node = add_node(admin_api, sshd)
    big = safetensors_dir / "blob.dat"
    with open(big, "wb") as f:
        f.truncate(512 << 20)
    version = services.register_version(model=model, version="bf16", source_uri=str(safetensors_dir), node=node)
    services.import_version(version.pk)
    version.refresh_from_db()
    services.request_verify(version)

    def change(line):
        if line.startswith("@@progress blob.dat 0 "):
            with open(big, "ab") as f:
                f.write(b"x")

    services.verify_version(version.pk, on_event=change)
    version.refresh_from_db()
    assert version.status == "failed" and "blob.dat: changed while it was hashed" in version.status_detail


def test_a_missing_directory_on_an_ssh_node_fails_the_import(admin_api, sshd, model, tmp_path):
    node = add_node(admin_api, sshd)
    version = services.register_version(model=model, version="x", source_uri=str(tmp_path / "absent"), node=node)
    services.import_version(version.pk)
    version.refresh_from_db()
    assert version.status == "failed" and "does not exist" in version.status_detail


def test_an_ssh_node_that_went_down_fails_verification_with_the_reason(admin_api, sshd, model, safetensors_dir):
    node = add_node(admin_api, sshd)
    version = services.register_version(model=model, version="bf16", source_uri=str(safetensors_dir), node=node)
    services.import_version(version.pk)
    version.refresh_from_db()
    services.request_verify(version)
    sshd.stop()
    POOL.close_all()
    services.verify_version(version.pk)
    version.refresh_from_db()
    assert version.status == "failed" and "refused" in version.status_detail

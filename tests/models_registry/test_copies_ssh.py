"""Copies of a version between two real sshd nodes on loopback, each with its own model root: the API,
the transfer through the console, verification against the manifest, resuming, cancelling and removal."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest

from console.core.models import Event
from models_registry import services
from models_registry.inspection import remote
from models_registry.models import ModelCopy
from models_registry.services import transfer
from nodes.services import probe_node
from nodes.transports.ssh import BULK_POOL, POOL, openssh
from tests.models_registry import raw_safetensors, verified_version
from tests.models_registry.conftest import TINY_LLAMA_CONFIG
from tests.models_registry.test_registry_ssh import add_node
from tests.sshd import SshdNode, require_sshd

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

URL = "/api/v1/model-versions/"
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}


@pytest.fixture
def two_nodes(tmp_path_factory):
    """Each with a HOME of its own: its login shell reads no rc file (this machine's root ~/.bashrc runs
    `pyenv init` in every SSH command's shell, and these tests cancel and kill commands)."""
    require_sshd()
    a, b = (SshdNode(env={**ENV, "HOME": str(tmp_path_factory.mktemp(f"home-{name}"))}) for name in "ab")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        POOL.close_all()
        BULK_POOL.close_all()
        a.cleanup()
        b.cleanup()


@pytest.fixture(params=["paramiko", "openssh"])
def client(request, settings, monkeypatch):
    """Which SSH client streams the shards (3 and 2 MiB): paramiko's pooled channels, or OpenSSH's ``ssh``
    processes (nodes/transports/ssh/openssh.py) for every file of 1 MiB or more. ``opened``: the commands
    that went through ``ssh``. The shards go through the nodes' stream program (splice), as files of 64 MiB
    and more do, the small files through ``cat`` and the shell receiver."""
    settings.CONSOLE_COPY_SSH_CLIENT = request.param
    settings.CONSOLE_COPY_OPENSSH_MIN_BYTES = 1 << 20
    monkeypatch.setattr(remote, "STREAM_PROGRAM_MIN_BYTES", 1 << 20)
    opened = []
    real = openssh.open_pipe

    def counting(target, command, **kwargs):
        opened.append(command)
        return real(target, command, **kwargs)

    monkeypatch.setattr(openssh, "open_pipe", counting)
    return SimpleNamespace(name=request.param, opened=opened)


@pytest.fixture
def roots(tmp_path):
    """Each node's own model root (both sshd run as this user on this machine)."""
    a, b = tmp_path / "root-a", tmp_path / "root-b"
    a.mkdir()
    b.mkdir()
    return a, b


def pattern(size: int, seed: int) -> bytes:
    block = bytes((seed + i) % 251 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


def write_model(directory) -> None:
    """config.json, two safetensors shards of 3 and 2 MiB (non-zero data) and a tokenizer in a sub
    directory whose name a shell would expand."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(TINY_LLAMA_CONFIG))
    for name, rows, seed in (("model-00001.safetensors", 1536, 1), ("model-00002.safetensors", 1024, 2)):
        header = {"w": {"dtype": "BF16", "shape": [rows, 1024], "data_offsets": [0, rows * 2048]}}
        (directory / name).write_bytes(raw_safetensors(header, pattern(rows * 2048, seed)))
    (directory / "sub dir").mkdir()
    (directory / "sub dir" / "tokenizer $(x).json").write_bytes(pattern(5000, 3))


@pytest.fixture
def setup(admin_api, two_nodes, roots, model):
    sshd_a, sshd_b = two_nodes
    root_a, root_b = roots
    node_a = add_node(admin_api, sshd_a, "node-a")
    node_b = add_node(admin_api, sshd_b, "node-b")
    for node in (node_a, node_b):  # the first probe pins each node's host key, as the console's beat does
        probe_node(node.pk)
        node.refresh_from_db()
        assert node.host_key, node.status_detail
    source = root_a / "tiny" / "v1"
    write_model(source)
    version = verified_version(model, node_a, source)
    return version, node_a, node_b, root_b


def test_the_import_node_holds_the_first_copy_and_it_is_ready_once_verified(admin_api, setup):
    version, node_a, _node_b, _root = setup
    rows = admin_api.get(f"{URL}{version.pk}/copies/").json()["results"]
    assert len(rows) == 1
    assert rows[0]["origin"] is True and rows[0]["node"] == node_a.pk and rows[0]["status"] == "ready"
    assert rows[0]["path"] == version.source_uri and rows[0]["verified_at"]


def test_a_version_imported_on_a_is_copied_to_b_and_verified_and_a_flipped_byte_fails_the_reverify(
        admin_api, operator_api, client, setup, django_capture_on_commit_callbacks):
    version, _node_a, node_b, root_b = setup
    target = root_b / "tiny-copy"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = operator_api.post(f"{URL}{version.pk}/copies/", {"node": node_b.pk, "path": str(target)},
                                     format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["size_bytes"] == version.size_bytes and len(queued) == 1
    transfer.run_copy(body["id"])
    copy = admin_api.get(f"{URL}{version.pk}/copies/{body['id']}/").json()
    assert copy["status"] == "ready", copy["detail"]
    assert copy["bytes_done"] == version.size_bytes and copy["files_copied"] == 4 and copy["files_skipped"] == 0
    for f in version.files.all():
        with open(f"{version.source_uri}/{f.path}", "rb") as original:
            assert (target / f.path).read_bytes() == original.read()
    assert not list(target.rglob("*.boom-part"))
    history = [h["to_status"] for h in admin_api.get(f"{URL}{version.pk}/copies/{body['id']}/history/").json()
               ["results"]]
    assert history == ["ready", "verifying", "copying", "pending"]
    # With OpenSSH, the two shards (1 MiB or more) went through ``ssh``: a reader and a writer each.
    assert len(client.opened) == (4 if client.name == "openssh" else 0)
    assert sorted(c[3] for c in client.opened) == (["boom-receive"] * 2 + ["boom-send"] * 2
                                                   if client.name == "openssh" else [])
    assert Event.objects.filter(verb="copy", object_id=str(version.pk)).count() == 1

    # One byte flipped on B: the re-verify fails naming the file, and an integrity event is written.
    shard = target / "model-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[12345] ^= 0xFF
    shard.write_bytes(bytes(data))
    with django_capture_on_commit_callbacks(execute=False):
        assert operator_api.post(f"{URL}{version.pk}/copies/{body['id']}/verify/").status_code == 202
    transfer.verify_copy(body["id"])
    copy = admin_api.get(f"{URL}{version.pk}/copies/{body['id']}/").json()
    assert copy["status"] == "failed" and "model-00002.safetensors" in copy["detail"]
    assert "model-00001.safetensors" not in copy["detail"]
    assert Event.objects.filter(verb="integrity", object_id=str(version.pk)).count() == 1


def test_a_transfer_killed_half_way_resumes_and_skips_the_finished_files(
        operator_api, client, setup, django_capture_on_commit_callbacks):
    version, _node_a, node_b, root_b = setup
    target = root_b / "resume"

    class Killed(Exception):
        pass

    def kill_in_the_second_shard(path, sent):
        if path.startswith("model-00002") and sent >= 1 << 20:
            raise Killed

    with django_capture_on_commit_callbacks(execute=False):
        copy_id = operator_api.post(f"{URL}{version.pk}/copies/", {"node": node_b.pk, "path": str(target)},
                                    format="json").json()["id"]
    # One stream at a time, largest first: the 3 MiB shard is done when the 2 MiB one is killed.
    transfer.run_copy(copy_id, parallel=1, on_chunk=kill_in_the_second_shard)
    copy = ModelCopy.objects.get(pk=copy_id)
    assert copy.status == "failed" and "model-00002.safetensors" in copy.status_detail
    assert (target / "model-00001.safetensors").exists()
    assert not (target / "model-00002.safetensors").exists()  # at most its .boom-part
    # A file of the right size but other bytes (a foreign leftover) must be written again, not kept.
    config = json.dumps(TINY_LLAMA_CONFIG).encode()
    (target / "config.json").write_bytes(b"x" * len(config))

    with django_capture_on_commit_callbacks(execute=False):
        response = operator_api.post(f"{URL}{version.pk}/copies/", {"node": node_b.pk}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["id"] == copy_id
    transfer.run_copy(copy_id, parallel=1)
    copy.refresh_from_db()
    assert copy.status == "ready", copy.status_detail
    assert copy.files_skipped == 1 and copy.files_copied == 3
    assert not list(target.rglob("*.boom-part")) and (target / "config.json").read_bytes() == config


def test_a_copy_needing_more_than_the_free_disk_is_a_409_with_both_numbers(operator_api, setup):
    version, _node_a, node_b, root_b = setup
    version.files.filter(path="model-00001.safetensors").update(size_bytes=1 << 60)
    response = operator_api.post(f"{URL}{version.pk}/copies/", {"node": node_b.pk, "path": str(root_b / "x")},
                                 format="json")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "bytes free" in detail and str(sum(version.files.values_list("size_bytes", flat=True))) in detail
    assert not ModelCopy.objects.filter(node=node_b).exists()


def test_copy_requests_that_cannot_be_served_are_refused(operator_api, admin_api, setup, model, roots):
    version, node_a, node_b, root_b = setup
    assert operator_api.post(f"{URL}{version.pk}/copies/", {"node": node_a.pk}, format="json").status_code == 409
    bad = operator_api.post(f"{URL}{version.pk}/copies/", {"node": node_b.pk, "path": "relative/dir"}, format="json")
    assert bad.status_code == 400 and "path" in bad.json()
    bad = operator_api.post(f"{URL}{version.pk}/copies/", {"node": node_b.pk, "path": "/tmp/../etc"}, format="json")
    assert bad.status_code == 400
    unverified = services.register_version(model=model, version="v2", source_uri=version.source_uri, node=node_a)
    response = operator_api.post(f"{URL}{unverified.pk}/copies/", {"node": node_b.pk}, format="json")
    assert response.status_code == 409 and "verify" in response.json()["detail"]


def test_a_copy_is_cancelled_and_then_removed_leaving_no_file(
        operator_api, setup, django_capture_on_commit_callbacks, monkeypatch):
    version, _node_a, node_b, root_b = setup
    target = root_b / "removed"
    with django_capture_on_commit_callbacks(execute=False):
        copy_id = operator_api.post(f"{URL}{version.pk}/copies/", {"node": node_b.pk, "path": str(target)},
                                    format="json").json()["id"]

    half_way = threading.Event()
    heartbeat = transfer._heartbeat

    def slow_down(path, sent):  # a stream thread: it may not use the test's database connection
        if sent >= 1 << 20:
            half_way.set()
            time.sleep(0.05)

    def cancel_half_way(copy, status, **fields):  # the transfer's own thread, like the API's request would
        if half_way.is_set() and ModelCopy.objects.get(pk=copy.pk).status == "copying":
            services.copies.cancel_copy(ModelCopy.objects.get(pk=copy.pk))
        return heartbeat(copy, status, **fields)

    monkeypatch.setattr(transfer, "_heartbeat", cancel_half_way)
    transfer.run_copy(copy_id, parallel=1, on_chunk=slow_down)
    copy = ModelCopy.objects.get(pk=copy_id)
    assert copy.status == "failed" and copy.status_detail.startswith("cancelled by")
    with django_capture_on_commit_callbacks(execute=False):
        response = operator_api.delete(f"{URL}{version.pk}/copies/{copy_id}/")
    assert response.status_code == 202 and response.json()["status"] == "removing"
    assert services.copies.remove_copy(copy_id) is True
    assert not ModelCopy.objects.filter(pk=copy_id).exists()
    assert not target.exists()


def test_the_origin_copy_cannot_be_removed(operator_api, setup):
    version, node_a, _node_b, _root = setup
    origin = ModelCopy.objects.get(version=version, origin=True)
    assert operator_api.delete(f"{URL}{version.pk}/copies/{origin.pk}/").status_code == 409


def test_a_stream_that_breaks_once_is_written_again_and_the_copy_ends_ready(
        operator_api, client, setup, django_capture_on_commit_callbacks):
    from nodes.transports import NodeCommandError

    version, _node_a, node_b, root_b = setup
    target = root_b / "retried"
    with django_capture_on_commit_callbacks(execute=False):
        copy_id = operator_api.post(f"{URL}{version.pk}/copies/", {"node": node_b.pk, "path": str(target)},
                                    format="json").json()["id"]
    broken = []

    def break_once(path, sent):
        if path.startswith("model-00001") and sent >= 1 << 20 and not broken:
            broken.append(path)
            raise NodeCommandError("connection to 127.0.0.1 was lost while reading")

    transfer.run_copy(copy_id, parallel=2, on_chunk=break_once)
    copy = ModelCopy.objects.get(pk=copy_id)
    assert broken == ["model-00001.safetensors"]
    assert copy.status == "ready", copy.status_detail
    assert copy.bytes_done == version.size_bytes and copy.files_copied == 4

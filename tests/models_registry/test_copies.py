"""Copies without a remote node: the state table, paths, the origin copy following the version, removal
refused while an instance uses the copy, roles, the /metrics families, and the local transport's pipes."""

from __future__ import annotations

import pytest

from console.core.statemachine import TransitionNotAllowed
from jobs.models import Instance
from models_registry import services
from models_registry.models import CopyStatusChange, ModelCopy
from models_registry.services import copies
from nodes.transports import NodeCommandError, transport_for
from tests import factories
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db

URL = "/api/v1/model-versions/"


@pytest.fixture
def copy_on_b():
    version = jf.version(name="DeepSeek-R1", version="w8a8")
    node = factories.node(name="npu-b")
    return ModelCopy.objects.create(version=version, node=node, path="/models/r1", status="ready")


def test_a_copy_moves_only_along_its_table_and_keeps_a_history(copy_on_b):
    with pytest.raises(TransitionNotAllowed, match="a model copy cannot go from ready to copying"):
        copies.transition_copy(copy_on_b, "copying", "no")
    assert copies.transition_copy(copy_on_b, "verifying", "check it", actor="ops")
    assert copies.transition_copy(copy_on_b, "failed", "a byte differs")
    row = CopyStatusChange.objects.get(copy=copy_on_b, to_status="failed")
    assert row.from_status == "verifying" and row.reason == "a byte differs"
    copy_on_b.refresh_from_db()
    assert copy_on_b.status_detail == "a byte differs"


def test_a_copy_transition_loses_to_a_concurrent_change(copy_on_b):
    stale = ModelCopy.objects.get(pk=copy_on_b.pk)
    assert copies.transition_copy(copy_on_b, "removing", "gone")
    assert copies.transition_copy(stale, "verifying", "too late") is False
    assert ModelCopy.objects.get(pk=copy_on_b.pk).status == "removing"


def test_a_slow_worker_whose_copy_was_started_again_can_neither_write_progress_nor_move_the_copy(copy_on_b):
    from models_registry.services import transfer

    ModelCopy.objects.filter(pk=copy_on_b.pk).update(status="pending")
    slow = ModelCopy.objects.get(pk=copy_on_b.pk)
    assert transfer._take(slow)
    # Its worker stalls past CONSOLE_COPY_STALE_S; the copy is asked for again and another worker takes it.
    again = ModelCopy.objects.get(pk=copy_on_b.pk)
    assert copies.transition_copy(again, "pending", "started again: its worker wrote nothing for 120 s")
    racer = ModelCopy.objects.get(pk=copy_on_b.pk)  # a second worker read it pending too
    assert transfer._take(again) and again.run == slow.run + 1
    assert transfer._take(racer) is False and transfer._take(ModelCopy.objects.get(pk=copy_on_b.pk)) is False
    # The slow worker wakes up: its progress is not written (it stops its streams) and it moves nothing.
    assert transfer._heartbeat(slow, "copying", bytes_done=1) is False
    assert transfer._move(slow, "verifying", "1 file(s) written; hashing them on the node") is False
    assert transfer._move(slow, "failed", "copy failed: reading it failed") is False
    assert transfer._heartbeat(again, "copying", bytes_done=5) is True
    row = ModelCopy.objects.get(pk=copy_on_b.pk)
    assert (row.status, row.bytes_done, row.run) == ("copying", 5, again.run)


@pytest.mark.parametrize("path, normal", [("/data/models/x", "/data/models/x"), ("~/m/x/", "~/m/x"),
                                          ("/data//models/./x", "/data/models/x")])
def test_copy_paths_are_normalised(path, normal):
    assert copies.check_path(path) == normal


@pytest.mark.parametrize("path", ["relative", "/", "~", "/a/../etc", "/a\nb", "/a\0b", "$(reboot)"])
def test_copy_paths_that_are_refused(path):
    with pytest.raises(services.InvalidInput):
        copies.check_path(path)


def test_the_default_path_is_under_the_model_root_by_model_and_version(settings):
    settings.CONSOLE_MODEL_ROOT = "/data/models/"
    version = jf.version(name="Qwen 2.5/7B $(x)", version="bf16")
    assert copies.default_path(version) == "/data/models/Qwen_2.5_7B_x/bf16"


def test_the_origin_copy_follows_the_version_status(db):
    node = factories.node(name="npu-a")
    version = jf.version(status="registered")
    version.node = node
    version.save(update_fields=["node"])
    services.transition_version(version, "verifying", "hashing")
    origin = ModelCopy.objects.get(version=version, origin=True)
    assert origin.node == node and origin.path == version.source_uri and origin.status == "verifying"
    services.transition_version(version, "verified", "ok", verified_at=None)
    origin.refresh_from_db()
    assert origin.status == "ready" and origin.progress == 1.0
    services.transition_version(version, "failed", "bad")
    origin.refresh_from_db()
    assert origin.status == "failed"


def test_a_copy_an_instance_uses_cannot_be_removed(operator_api, copy_on_b):
    job = jf.job(name="r1", model_version=copy_on_b.version)
    instance = Instance.objects.create(job=job, node=copy_on_b.node, replica=0, state="running")
    response = operator_api.delete(f"{URL}{copy_on_b.version_id}/copies/{copy_on_b.pk}/")
    assert response.status_code == 409 and "r1" in response.json()["detail"]
    Instance.objects.filter(pk=instance.pk).update(state="stopped")
    response = operator_api.delete(f"{URL}{copy_on_b.version_id}/copies/{copy_on_b.pk}/")
    assert response.status_code == 202 and response.json()["status"] == "removing"


def test_viewers_read_copies_and_may_not_request_or_remove_them(viewer_api, copy_on_b):
    base = f"{URL}{copy_on_b.version_id}/copies/"
    listed = viewer_api.get(base).json()
    assert listed["count"] == 1 and listed["results"][0]["node_name"] == "npu-b"
    assert viewer_api.post(base, {"node": copy_on_b.node_id}, format="json").status_code == 403
    assert viewer_api.delete(f"{base}{copy_on_b.pk}/").status_code == 403
    assert viewer_api.get(f"{URL}{copy_on_b.version_id}/copies/99999/").status_code == 404


def test_cancelling_a_copy_that_is_not_running_is_a_409(operator_api, copy_on_b):
    response = operator_api.post(f"{URL}{copy_on_b.version_id}/copies/{copy_on_b.pk}/cancel/")
    assert response.status_code == 409


def test_metrics_count_copies_by_status_and_show_progress(client, settings, copy_on_b):
    settings.CONSOLE_METRICS_PUBLIC = True
    ModelCopy.objects.create(version=copy_on_b.version, node=factories.node(name="npu-c"), path="/m", status="copying",
                             progress=0.25, bytes_done=1024)
    text = client.get("/metrics").content.decode()
    assert 'boom_model_copies{status="ready"} 1.0' in text
    assert 'boom_model_copies{status="copying"} 1.0' in text
    assert 'boom_model_copies{status="failed"} 0.0' in text
    assert 'boom_model_copy_progress_ratio{model="DeepSeek-R1",node="npu-c",version="w8a8"} 0.25' in text
    assert 'boom_model_copy_bytes{model="DeepSeek-R1",node="npu-c",version="w8a8"} 1024.0' in text


def test_a_local_pipe_streams_bytes_both_ways_and_reports_the_exit_code(local_node):
    with transport_for(local_node).open_pipe(["sh", "-c", "cat; echo done >&2; exit 3"]) as pipe:
        pipe.write(b"\x00\xffpayload")
        pipe.close_write()
        data = b""
        while chunk := pipe.read(4):
            data += chunk
        result = pipe.wait(10)
    assert data == b"\x00\xffpayload" and result.exit_code == 3 and result.stderr == "done\n"


def test_a_local_pipe_that_gets_nothing_times_out(local_node):
    with transport_for(local_node).open_pipe(["sleep", "30"], timeout=0.5) as pipe, \
            pytest.raises(NodeCommandError, match="sent nothing"):
        pipe.read(10)


def test_a_copy_change_is_published_on_its_nodes_live_stream(copy_on_b):
    from console.core.models import StreamEntry

    copies.transition_copy(copy_on_b, "verifying", "hashing", progress=0.0)
    entry = StreamEntry.objects.filter(topic=f"node:{copy_on_b.node_id}").latest("pk")
    assert entry.payload["state"]["copies"][str(copy_on_b.pk)]["status"] == "verifying"
    assert entry.payload["state"]["copies"][str(copy_on_b.pk)]["version"] == copy_on_b.version_id

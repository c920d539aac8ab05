"""Agentless inventory over a real sshd: an SSH node is added through the API with a key, comes
online with its accelerators (fake nvidia-smi / npu-smi on the node's PATH print real captures),
pins its host key, refuses a changed one, and survives being unreachable."""

import pytest

from nodes import services
from nodes.models import Accelerator, Node
from nodes.transports.ssh import POOL
from tests.conftest import FAKE_BIN
from tests.sshd import SshdNode, require_sshd
from tests.timing import scaled

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

BASE_PATH = f"{FAKE_BIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


@pytest.fixture
def sshd():
    require_sshd()
    node = SshdNode(env={"PATH": BASE_PATH})
    node.start()
    yield node
    POOL.close_all()
    node.cleanup()


def add_node(api, sshd, name="gpu-npu-01"):
    credential = api.post("/api/v1/credentials/", {"name": f"{name}-key", "username": sshd.username,
                                                   "private_key": sshd.client_key_pem}, format="json")
    assert credential.status_code == 201, credential.content
    response = api.post("/api/v1/nodes/", {"name": name, "address": "127.0.0.1", "transport": "ssh",
                                           "ssh_port": sshd.port, "credential": credential.json()["id"]},
                        format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_an_ssh_node_comes_online_with_its_facts_and_accelerators_and_pins_its_host_key(admin_api, sshd):
    node_id = add_node(admin_api, sshd)
    services.probe_node(node_id)
    node = admin_api.get(f"/api/v1/nodes/{node_id}/").json()
    assert node["status"] == "online", node["status_detail"]
    assert node["facts"]["cpu_cores"] >= 1 and node["facts"]["memory_total_bytes"] > 0
    assert node["facts"]["kernel"] and node["facts"]["arch"]
    assert node["facts"]["nvidia_driver_version"] == "590.48.01"
    assert node["accelerator_count"] == 16
    accelerators = admin_api.get(f"/api/v1/accelerators/?node={node_id}").json()
    assert accelerators["count"] == 16
    vendors = {a["vendor"] for a in accelerators["results"]}
    assert vendors == {"nvidia", "huawei"}
    npu = admin_api.get(f"/api/v1/accelerators/?node={node_id}&vendor=huawei").json()["results"]
    assert sorted(a["index"] for a in npu) == list(range(8))
    assert all(a["memory_total_bytes"] == 65536 * 1024 * 1024 for a in npu)
    assert node["host_key_fingerprint"].startswith("SHA256:")
    assert Node.objects.get(pk=node_id).host_key == sshd.host_key_line


def test_a_changed_host_key_is_refused_and_the_status_detail_says_so(admin_api, sshd):
    node_id = add_node(admin_api, sshd)
    services.probe_node(node_id)
    sshd.rotate_host_key()
    POOL.close_all()
    services.probe_node(node_id)
    node = Node.objects.get(pk=node_id)
    assert node.status == "unreachable"
    assert "host key" in node.status_detail.lower()
    history = list(node.status_history.values_list("to_status", flat=True))
    assert history[:2] == ["unreachable", "online"]
    # An admin who knows the machine was reinstalled resets the pin; the next probe pins the new key.
    assert admin_api.post(f"/api/v1/nodes/{node_id}/reset-host-key/").status_code == 200
    services.probe_node(node_id)
    node.refresh_from_db()
    assert node.status == "online" and node.host_key == sshd.host_key_line


def test_an_unreachable_node_is_a_status_with_a_reason_and_comes_back(admin_api, sshd):
    node_id = add_node(admin_api, sshd)
    services.probe_node(node_id)
    sshd.stop()
    services.probe_node(node_id)
    node = Node.objects.get(pk=node_id)
    assert node.status == "unreachable" and node.status_detail
    assert Accelerator.objects.filter(node_id=node_id, present=True).count() == 16  # last known, not deleted
    sshd.restart()
    services.probe_node(node_id)
    assert Node.objects.get(pk=node_id).status == "online"


def test_an_accelerator_that_vanishes_is_marked_missing_not_deleted(admin_api, sshd):
    node_id = add_node(admin_api, sshd)
    services.probe_node(node_id)
    sshd.env["BOOM_FAKE_NVIDIA_SMI_COUNT"] = "6"
    sshd.restart()
    services.probe_node(node_id)
    node = Node.objects.get(pk=node_id)
    missing = Accelerator.objects.filter(node_id=node_id, present=False)
    assert sorted(missing.values_list("index", flat=True)) == [6, 7]
    assert node.status == "degraded" and "missing" in node.status_detail
    assert admin_api.get(f"/api/v1/accelerators/?node={node_id}&present=false").json()["count"] == 2


def test_a_tool_printing_an_unknown_layout_is_a_probe_error_naming_the_tool(admin_api, sshd, tmp_path):
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("this is not what npu-smi prints\n+--+\n| ? |\n")
    sshd.env["BOOM_FAKE_NPU_SMI_INFO"] = str(garbage)
    sshd.restart()
    node_id = add_node(admin_api, sshd)
    services.probe_node(node_id)
    node = Node.objects.get(pk=node_id)
    assert node.status == "degraded"
    assert any("npu-smi" in error for error in node.probe_errors), node.probe_errors
    assert node.accelerator_count == 8  # the GPUs are still inventoried


@pytest.mark.django_db(transaction=True)
def test_a_dead_node_does_not_delay_the_probe_results_of_the_others(admin_api, sshd, settings):
    import socket
    import time

    # The dead node's timeout grows with the machine's load, so that the good node's result comes first.
    timeout = max(4, round(scaled(4)))
    settings.CONSOLE_SSH_CONNECT_TIMEOUT_S = timeout
    good = add_node(admin_api, sshd, name="good")
    # A listener that accepts and never speaks SSH: the probe waits for its banner until the timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        credential = Node.objects.get(pk=good).credential_id
        dead = Node.objects.create(name="dead", address="127.0.0.1", transport="ssh",
                                   ssh_port=silent.getsockname()[1], credential_id=credential).pk
        started = time.monotonic()
        futures = services.probe_round([dead, good], deadline_s=0.1)
        assert futures == {dead: False, good: False}  # the round returns at its deadline...
        from tests.integration.procs import wait_until

        wait_until(lambda: Node.objects.get(pk=good).status == "online", timeout, what="the good node's result")
        # ...and the good node's result is stored before the dead one's (still waiting for its banner).
        assert Node.objects.get(pk=dead).last_probe_at is None, time.monotonic() - started
        wait_until(lambda: Node.objects.get(pk=dead).status == "unreachable", timeout + scaled(15),
                   what="the dead node's timeout")
    finally:
        silent.close()

"""The placement preview says what the job would get (issue 17, item 5): memory per accelerator in a unit
that reads (not "0.0 GiB"), replicas counted in words that agree, each chosen accelerator's memory, load
and holders, a warning when one is at 100 %; the job form asks before creating a job it cannot place."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from jobs.models import Instance, Job
from jobs.placement import format_bytes
from nodes.models import Accelerator, AcceleratorSample
from tests import factories
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db


def body(version, **extra):
    return {"name": "qwen-chat", "model_version": version.pk, "engine": "vllm", "replicas": 1,
            "accelerators_per_replica": 1, **extra}


def test_the_preview_gives_each_chosen_accelerator_its_memory_load_and_a_readable_need(admin_api):
    node = factories.node(name="gpu-1")
    gpus = factories.accelerators(node, 2, "nvidia")
    AcceleratorSample.objects.create(accelerator=gpus[0], node=node, ts=int(time.time() * 1000) - 1000,
                                     utilization_percent=37.0, memory_used_bytes=3 << 30)
    version = jf.version(memory=12 << 20)  # a tiny model: 12 MiB, which "0.0 GiB" hid
    result = admin_api.post("/api/v1/jobs/preview-placement/", body(version, placement="spread"),
                            format="json").json()
    assert result["placeable"] is True and result["memory_per_accelerator_bytes"] == 12 << 20
    assert result["memory_per_accelerator"] == "12.0 MiB"
    assert result["summary"] == "1 of 1 replica can be placed now."
    chosen = result["replicas"][0][0]["accelerators"][0]
    assert chosen["id"] == gpus[0].pk and chosen["label"] == "GPU 0" and chosen["model"] == "H100"
    # The streamed sample is the current load; the accelerator row (the last probe) is the fallback.
    assert chosen["utilization_percent"] == 37.0 and chosen["memory_used_bytes"] == 3 << 30
    assert chosen["memory_total_bytes"] == 80 << 30 and chosen["memory_free_bytes"] == 77 << 30
    assert chosen["memory_text"] == "3.0 GiB of 80.0 GiB used" and chosen["saturated"] is False
    assert result["warnings"] == []


def test_replicas_are_counted_in_words_that_agree_in_english_and_chinese(admin_api):
    factories.accelerators(factories.node(), 8, "nvidia")
    version = jf.version()
    two = admin_api.post("/api/v1/jobs/preview-placement/", body(version, replicas=2), format="json").json()
    assert two["summary"] == "2 of 2 replicas can be placed now."
    with translation.override("zh-hans"):
        one = admin_api.post("/api/v1/jobs/preview-placement/", body(version), format="json",
                             HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert "replica" not in one["summary"] and "1" in one["summary"]


def test_the_preview_warns_when_a_chosen_accelerator_is_at_100_percent_and_names_who_holds_it(admin_api):
    node = factories.node(name="npu-1")
    npus = factories.accelerators(node, 1, "huawei")
    other = jf.job(name="resident", engine="vllm-ascend")
    held = Instance.objects.create(job=other, replica=0, node=node, pid=4242, state="running")
    Accelerator.objects.filter(pk=npus[0].pk).update(
        utilization_percent=100.0, extra={"processes": [{"pid": 4242, "name": "python3"},
                                                        {"pid": 77, "name": "mystery"}]})
    version = jf.version(quantization="w8a8")
    result = admin_api.post("/api/v1/jobs/preview-placement/", body(version, engine="vllm-ascend"),
                            format="json").json()
    chosen = result["replicas"][0][0]["accelerators"][0]
    assert chosen["saturated"] is True and chosen["utilization_percent"] == 100.0
    assert chosen["holders"][0] == {"job": other.pk, "job_name": "resident", "instance": held.pk, "replica": 0,
                                    "pid": 4242, "text": f"job resident, replica 0 (instance {held.pk})"}
    assert chosen["holders"][1]["pid"] == 77 and "not started by the console" in chosen["holders"][1]["text"]
    [warning] = result["warnings"]
    assert "NPU 0 on npu-1 is at 100 % utilisation" in warning and "resident" in warning


def test_the_preview_costs_the_same_queries_for_one_or_eight_accelerators(admin_api):
    version = jf.version()
    counts = []
    for n in (1, 8):
        node = factories.node()
        factories.accelerators(node, n, "nvidia")
        with CaptureQueriesContext(connection) as ctx:
            result = admin_api.post("/api/v1/jobs/preview-placement/",
                                    body(version, accelerators_per_replica=n, node_selector={}), format="json").json()
        assert result["placeable"], result
        counts.append(len(ctx))
        node.delete()
    assert counts[0] == counts[1], counts


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("admin"))
    return client


def form_data(version, **extra):
    return {"name": "big-one", "model_version": version.pk, "engine": "vllm", "replicas": 2,
            "accelerators_per_replica": 8, "nodes_per_replica": 1, "placement": "binpack", "start": "on",
            "options": "{}", **extra}


def test_the_job_form_asks_before_creating_a_job_its_preview_cannot_place(admin_client):
    factories.accelerators(factories.node(name="gpu-1"), 8, "nvidia")
    version = jf.version()
    response = admin_client.post("/jobs/add/", form_data(version))
    assert response.status_code == 200 and not Job.objects.exists()
    text = response.content.decode()
    assert 'id="unplaceable-warning"' in text and "1 of 2 replicas can be placed now." in text
    assert 'name="confirm_unplaceable"' in text and "no room" in text
    # The second submit, with the box ticked, creates it (pending until there is room).
    response = admin_client.post("/jobs/add/", form_data(version, confirm_unplaceable="on"))
    job = Job.objects.get(name="big-one")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"


def test_the_job_form_creates_a_placeable_job_or_one_not_started_without_asking(admin_client):
    factories.accelerators(factories.node(name="gpu-1"), 8, "nvidia")
    version = jf.version()
    assert admin_client.post("/jobs/add/", form_data(version, replicas=1)).status_code == 302
    stopped = form_data(version, name="later")
    del stopped["start"]
    assert admin_client.post("/jobs/add/", stopped).status_code == 302
    assert set(Job.objects.values_list("name", flat=True)) == {"big-one", "later"}


def test_the_no_room_reason_gives_a_small_models_need_in_a_unit_that_reads(admin_api):
    node = factories.node(name="full")
    gpu = factories.accelerators(node, 1, "nvidia")[0]
    Accelerator.objects.filter(pk=gpu.pk).update(memory_used_bytes=(80 << 30) - (1 << 20))  # 1 MiB free
    result = admin_api.post("/api/v1/jobs/preview-placement/", body(jf.version(memory=12 << 20)),
                            format="json").json()
    assert result["placeable"] is False
    assert result["reason"].endswith("; 1 free accelerator(s) lack the 12.0 MiB each needs"), result["reason"]


@pytest.mark.parametrize("count, text", [(None, "0 B"), (512, "512 B"), (12 << 20, "12.0 MiB"),
                                         (int(1.5 * 2**30), "1.5 GiB"), (640 << 30, "640.0 GiB"), (3 << 40, "3.0 TiB")])
def test_sizes_are_written_in_the_binary_unit_that_reads(count, text):
    assert format_bytes(count) == text

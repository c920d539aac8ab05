"""What the system writes (event verbs, object types and details, exit causes, status details, the actor
"system", built-in alert names, summaries and descriptions, benchmark states, engine and vendor codes)
is shown in the reader's language: the Chinese pages carry no English word the console wrote, after each
kind of event, cause and alert was produced by the code that writes it in production."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation

from console.alerting import evaluator
from console.alerting import messages as alerting_messages
from console.alerting.models import Alert
from console.core import messages
from console.core.models import Event
from jobs import reconciler
from jobs import services as job_services
from jobs.benchmarks import services as benchmark_services
from jobs.choices import InstanceState
from jobs.engines.registry import get_engine
from jobs.executors.base import ProcessStatus
from jobs.models import BenchmarkRun, Instance
from jobs.placement import MemberPlan
from models_registry.choices import CopyStatus, VersionStatus
from models_registry.models import ModelCopy, ModelVersion
from models_registry.services import copies as copy_services
from models_registry.services import transfer
from models_registry.services.common import transition_version
from nodes import services as node_services
from nodes.choices import NodeStatus, Transport
from tests import factories
from tests.jobs import factories as jf

# Names the test gives its objects, and tokens that are the same in every language (units, acronyms,
# signal and product names, identifiers).
NAMES = ("gpu-a1", "cpu-b2", "qwen-chat", "Qwen2.5-7B-Instruct", "bf16", "llama-bench", "admin-user")
TOKENS = ("SIGKILL", "OOM", "CUDA", "GPU", "NPU", "CPU", "SSH", "PID", "HTTP", "API", "URL", "GiB", "MiB", "KV",
          "SHA-256", "sha256", "BooM", "tokens/s", "TTFT", "ITL", "p50", "p99", "JSON", "JSONL", "CSV", "ID", "UUID",
          "NVIDIA", "Huawei", "Ascend", "vLLM", "SGLang", "MindIE", "llama.cpp", "OpenAI", "max_model_len",
          "Prometheus", "Alertmanager", "tokens", "QPS", "Token", "OutOfMemoryError", "TPOT", "UTC", "safetensors",
          # a quote of the engine's log inside a cause; the API's words in a hint about evaluations
          "CUDA out of memory", "PATCH", "evaluations", "model-versions/{id}/", "Python", "curl", "openai")
ENGLISH_WORD = re.compile(r"\b[A-Za-z]{3,}\b")


def visible_english(html: str) -> list[str]:
    """English words in what a reader sees of the page's main part: scripts, styles, tags, attributes,
    <code> (identifiers), the names the test gave and the tokens above removed."""
    main = html.split("<main>", 1)[-1].split("</main>", 1)[0]
    main = re.sub(r"<(script|style|code|pre|select)\b.*?</\1>", " ", main, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", main)
    text = re.sub(r"&[a-z#0-9]+;", " ", text)
    for token in sorted(NAMES + TOKENS, key=len, reverse=True):
        text = text.replace(token, " ")
    text = re.sub(r"https?://\S+|(?<![\w.])/[\w./{}-]*", " ", text)  # URLs and paths
    text = re.sub(r"\b(?:r\d+|m\d+|nvidia\d+|[0-9a-f]{16})\b", " ", text)  # replica/member names, fingerprints
    return ENGLISH_WORD.findall(text)


@pytest.fixture(autouse=True)
def back_to_english():
    yield
    translation.deactivate()


def produce_everything(api_client) -> dict:
    """Each kind of thing the console writes, through the code that writes it."""
    lost = factories.node(name="gpu-a1", address="127.0.0.1", ssh_port=1, transport=Transport.SSH)
    factories.accelerators(lost, count=2)
    node_services.probe_node(lost.pk)  # no credential: unreachable, with the transport's reason
    lost.refresh_from_db()
    assert lost.status == NodeStatus.UNREACHABLE, lost.status_detail
    node_services.set_maintenance(lost, True)
    node_services.set_maintenance(lost, False)
    node_services.probe_node(lost.pk)
    lost.refresh_from_db()

    host = factories.node(name="cpu-b2", transport=Transport.LOCAL, status=NodeStatus.ONLINE)
    # An operator's change through the API: an "update" event with the fields it named.
    changed = api_client.patch(f"/api/v1/nodes/{host.pk}/", {"probe_interval_s": 30},
                               content_type="application/json")
    assert changed.status_code == 200, changed.content
    accelerators = factories.accelerators(host, count=2)
    version = jf.version(status=VersionStatus.REGISTERED)
    job = jf.job(name="qwen-chat", engine="simulator", model_version=version)
    instance = Instance.objects.create(job=job, replica=0, member=0, node=host, port=40123,
                                       state=InstanceState.SCHEDULED, generation=job.generation)
    job_services.record_created(instance, MemberPlan(host, accelerators))
    engine = get_engine("simulator")
    killed = ProcessStatus(alive=False, ours=True, exit_code=137, signal=9)
    for tail in ("", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", ""):
        job_services.transition_instance(instance, InstanceState.STARTING, "starting")
        job_services.transition_instance(instance, InstanceState.RUNNING, "ready")
        reconciler._failed(instance, reconciler.exit_reason(killed, tail, engine), tail)
    job_services.refresh_job_state(job)

    transition_version(version, VersionStatus.VERIFYING, "computing sha256 on the node")
    transition_version(version, VersionStatus.VERIFIED, "2 files verified (sha256)")

    run = BenchmarkRun.objects.create(job=job, label="llama-bench", endpoint_url="http://127.0.0.1:1/v1",
                                      endpoints=["http://127.0.0.1:1/v1"], concurrency=[1, 32],
                                      requests_per_level=8, input_tokens=16, output_tokens=8)
    benchmark_services.cancel_benchmark(run)

    # Alerts: the node unreachable for minutes, the instance in a crash loop, the job failing.
    type(lost).objects.filter(pk=lost.pk).update(status_changed_at=timezone.now() - timedelta(minutes=5))
    evaluator.evaluate()
    evaluator.evaluate(now=timezone.now() + timedelta(minutes=2))
    return {"node": lost, "host": host, "job": job, "instance": instance, "version": version, "run": run}


@pytest.fixture
def chinese(client, make_user):
    client.force_login(make_user("admin"))
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    return client


@pytest.mark.django_db(transaction=True)
def test_the_chinese_pages_show_no_english_the_system_wrote(chinese):
    objects = produce_everything(chinese)
    alerts = list(Alert.objects.all())
    assert {a.rule_name for a in alerts} >= {"Node unreachable", "Instance crash loop"}, alerts
    pages = {
        "events": reverse("event-list"),
        "job": reverse("job-detail", args=[objects["job"].pk]),
        "jobs": reverse("job-list"),
        "node": reverse("node-detail", args=[objects["node"].pk]),
        "nodes": reverse("node-list"),
        "version": reverse("model-version-detail", args=[objects["version"].pk]),
        "benchmark": reverse("benchmark-detail", args=[objects["run"].pk]),
        "alerts": reverse("alerting-alerts") + "?state=all",
        "overview": reverse("dashboard"),
        "rules": reverse("alerting-rules"),
        **{f"alert {a.rule_name}": reverse("alerting-alert", args=[a.pk]) for a in alerts},
    }
    english = {}
    for name, url in pages.items():
        page = chinese.get(url)
        assert page.status_code == 200, (name, page.status_code)
        words = visible_english(page.content.decode())
        if words:
            english[name] = sorted(set(words))
    assert not english, f"English on the Chinese pages: {english}"

    events = chinese.get(reverse("event-list")).content.decode()
    for text in ("状态变化", "系统", "节点", "不可达", "该节点未设置 SSH 凭据", "被 SIGKILL 信号终止（退出码 137）",
                 "秒后重启", "立即重启", "加速卡显存不足", "已调度到 cpu-b2，使用 nvidia0, nvidia1", "开始前已取消",
                 "已校验 2 个文件（sha256）", "由运维人员设置", "维护已结束"):
        assert text in events, text
    benchmark = chinese.get(reverse("benchmark-detail", args=[objects["run"].pk])).content.decode()
    assert "并发数 1, 32" in benchmark and "每档 8 个请求" in benchmark and "32 每档请求数" not in benchmark
    alerts_page = chinese.get(reverse("alerting-alerts") + "?state=all").content.decode()
    assert "节点 gpu-a1 不可达" in alerts_page and "节点不可达" in alerts_page
    assert "节点=gpu-a1" in alerts_page and "node=" not in alerts_page.split('title="', 1)[0]


@pytest.mark.django_db(transaction=True)
def test_each_event_stores_the_code_and_parameters_of_its_reason_and_keeps_its_english_text(chinese):
    objects = produce_everything(chinese)
    restarts = Event.objects.filter(object_type="instance", object_id=str(objects["instance"].pk),
                                    detail__to="restarting").order_by("id")
    first = restarts.first().detail
    assert first["reason"] == "killed by SIGKILL (exit code 137); restarting at once"
    assert first["reason_message"] == {"code": "instance.restarting_now",
                                       "params": {"cause": "killed by SIGKILL (exit code 137)"}}
    assert chinese.get(f"/api/v1/events/{restarts.first().pk}/").json()["message"].startswith("状态变化")
    # The API keeps the English text and adds it in the reader's language beside it.
    instance = chinese.get(f"/api/v1/instances/{objects['instance'].pk}/").json()
    assert instance["last_exit_reason"] == "killed by SIGKILL (exit code 137)"
    assert instance["last_exit_reason_display"] == "被 SIGKILL 信号终止（退出码 137）"
    node = chinese.get(f"/api/v1/nodes/{objects['node'].pk}/").json()
    assert node["status_detail"] == "no SSH credential is set for this node"
    assert node["status_detail_display"] == "该节点未设置 SSH 凭据"
    # A stored text of an older release (free text, no code) renders all the same.
    with translation.override("zh-hans"):
        assert messages.render("exited with code 3; restarting in 40 s") == "已退出，退出码 3；40 秒后重启"
        assert messages.render("something only a node's tool says") == "something only a node's tool says"


def test_the_builtin_alert_templates_are_in_the_message_catalogue():
    """A changed built-in template must change its registered message too (or its alerts stay English)."""
    registered = messages.codes()
    for code, template in alerting_messages.builtin_templates().items():
        assert registered.get(code) == template, code


def test_every_registered_template_is_translated_with_the_same_placeholders():
    with translation.override("zh-hans"):
        for code, template in messages.codes().items():
            chinese = translation.gettext(template)
            literal = messages._PLACEHOLDER.sub("", template)
            assert chinese != template or not re.search(r"[A-Za-z]{3,}", literal), code
            placeholders = sorted(messages._PLACEHOLDER.findall(template))
            assert sorted(messages._PLACEHOLDER.findall(chinese)) == placeholders, code


def test_a_text_is_parsed_back_into_its_code_and_parameters_and_nested_causes_render_too():
    found = messages.parse("killed by SIGKILL (exit code 137); restarting in 40 s")
    assert found.code == "instance.restarting_in" and found.params == {
        "cause": "killed by SIGKILL (exit code 137)", "delay": "40"}
    assert messages.parse("Accelerator nvidia0 of gpu-a1 reports health critical").params == {
        "vendor": "nvidia", "index": "0", "node_name": "gpu-a1", "health": "critical"}
    with translation.override("zh-hans"):
        assert found.render() == "被 SIGKILL 信号终止（退出码 137）；40 秒后重启"
        assert str(found) == "killed by SIGKILL (exit code 137); restarting in 40 s"


@pytest.mark.django_db
def test_a_reason_given_as_a_message_is_stored_as_english_text_and_as_its_code():
    node = factories.node(name="gpu-a1", status=NodeStatus.ONLINE)
    reason = messages.message("node.unhealthy_accelerators", accelerator_health="nvidia0 critical, nvidia1 warning")
    assert node_services.transition_node(node, NodeStatus.DEGRADED, reason)
    node.refresh_from_db()
    assert node.status_detail == "unhealthy accelerators: nvidia0 critical, nvidia1 warning"
    event = Event.objects.filter(object_type="node", verb="status").latest("id")
    assert event.detail["reason"] == "unhealthy accelerators: nvidia0 critical, nvidia1 warning"
    assert event.detail["reason_message"] == {"code": "node.unhealthy_accelerators",
                                              "params": {"accelerator_health": "nvidia0 critical, nvidia1 warning"}}
    with translation.override("zh-hans"):
        assert messages.render(event.detail["reason_message"]) == "不健康的加速卡：nvidia0 严重, nvidia1 警告"


@pytest.mark.django_db(transaction=True)
def test_the_copies_of_a_version_and_a_preparing_instance_show_no_english_on_the_chinese_pages(chinese):
    """A copy that failed, one that streams, and the instances waiting for them (jobs.weights), through the
    code that writes their details and reasons: the version page and the job page show them in Chinese."""
    origin_node = factories.node(name="gpu-a1", transport=Transport.LOCAL, status=NodeStatus.ONLINE)
    copying_node = factories.node(name="cpu-b2", transport=Transport.LOCAL, status=NodeStatus.ONLINE)
    failing_node = factories.node(name="n3", transport=Transport.LOCAL, status=NodeStatus.ONLINE)
    version = jf.version(status=VersionStatus.VERIFIED)
    ModelVersion.objects.filter(pk=version.pk).update(node=origin_node, sha256="0" * 64)
    version.refresh_from_db()
    origin = ModelCopy.objects.create(version=version, node=origin_node, path="/models/origin", origin=True,
                                      status=CopyStatus.READY)
    copying = ModelCopy.objects.create(
        version=version, node=copying_node, path="/models/copy", source=origin, status=CopyStatus.PENDING,
        status_detail="waiting to copy from node gpu-a1", size_bytes=1000)
    assert copy_services.transition_copy(copying, CopyStatus.COPYING, "planning the transfer")
    assert transfer._heartbeat(copying, CopyStatus.COPYING, bytes_done=400, progress=0.4, files_skipped=0,
                               status_detail="streaming 3 file(s) from node gpu-a1; checking 1 already there")
    # A copy whose source is not ready: run_copy fails it with its reason.
    failed = ModelCopy.objects.create(version=version, node=failing_node, path="/models/copy", source=copying,
                                      status=CopyStatus.PENDING, status_detail="waiting to copy from node cpu-b2")
    transfer.run_copy(failed.pk)
    failed.refresh_from_db()
    assert failed.status == CopyStatus.FAILED
    assert failed.status_detail == "copy failed: the source copy is not ready any more; ask for the copy again"

    job = jf.job(name="qwen-chat", engine="llamacpp", model_version=version, accelerators_per_replica=0)
    preparing = Instance.objects.create(job=job, replica=0, member=0, node=copying_node, port=40123,
                                        state=InstanceState.SCHEDULED, generation=job.generation)
    refused = Instance.objects.create(job=job, replica=1, member=0, node=failing_node, port=40124,
                                      state=InstanceState.SCHEDULED, generation=job.generation)
    assert not reconciler._weights_ready(job, preparing)
    assert not reconciler._weights_ready(job, refused)
    preparing.refresh_from_db()
    refused.refresh_from_db()
    assert preparing.state == InstanceState.PREPARING
    assert preparing.state_detail == "copying the model's files to node cpu-b2: copying (40%)"
    assert refused.state == InstanceState.FAILED
    assert refused.last_exit_reason.startswith("the copy of the model to node n3 failed: copy failed: ")
    job_services.refresh_job_state(job)

    english = {}
    for name, url in {"version": reverse("model-version-detail", args=[version.pk]),
                      "job": reverse("job-detail", args=[job.pk])}.items():
        page = chinese.get(url)
        assert page.status_code == 200, (name, page.status_code)
        words = visible_english(page.content.decode())
        if words:
            english[name] = sorted(set(words))
    assert not english, f"English on the Chinese pages: {english}"
    version_page = chinese.get(reverse("model-version-detail", args=[version.pk])).content.decode()
    assert "复制失败：源副本已不再就绪；请重新发起复制" in version_page
    assert "正在从节点 gpu-a1 传输 3 个文件；正在检查已存在的 1 个文件" in version_page
    job_page = chinese.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "正在将模型文件复制到节点 cpu-b2" in job_page


def test_every_sentence_the_copies_weights_and_recommendation_write_is_in_the_catalogue():
    """The English each of them writes (with sample values) parses back into a registered template."""
    written = [
        "waiting to copy from node gpu-a1", "started again: waiting to copy from node gpu-a1", "cancelled by admin",
        "removing its files", "removal failed: node gpu-a1: ssh: connection refused",
        "removal failed: /m/a: Permission denied", "hashing the files on the node", "planning the transfer",
        "copy failed: qwen/bf16 is not verified any more",
        "copy failed: 2 file(s) could not be copied: a.gguf: checking them failed: timed out",
        "streaming 3 file(s) from node gpu-a1", "2 file(s) written; hashing them on the node",
        "2 file(s) verified on the node", "2 file(s) verified on the node, 1 kept from before",
        "verification failed: node gpu-a1: timed out",
        "the version's directory: computing sha256 on the node", "the version is verified: 2 files verified (sha256)",
        "copying the model's files to node cpu-b2: pending", "the copy of the model on node cpu-b2 is being removed",
        "the model cannot be copied to node cpu-b2: no other node holds a ready copy of qwen/bf16 to copy from",
        "the model cannot be copied to node cpu-b2: qwen/bf16 is registered: verify it first, its verified "
        "manifest is what a copy is checked against",
        "no engine serves gguf weights on npu accelerators",
        "vLLM cannot serve the q4 quantization on nvidia accelerators (nor can SGLang)",
        "vLLM cannot serve the q4 quantization on nvidia accelerators (nor can any other engine)",
        "the version has no memory estimate (import it): one accelerator assumed",
        "llama.cpp cannot run a replica over 2 nodes",
        "not enough free accelerators: 2 replica(s) need 2 node(s) with 4 free nvidia accelerator(s) each; "
        "1 node(s) have them now",
        "not enough free accelerators: 1 replica(s) need 1 node(s) with room each; 0 node(s) have them now",
        "node gpu-a1 has CUDA 11.8; vLLM needs 12.1 or newer",
        "the weights are not on gpu-a1, cpu-b2 and cannot be copied there: verify the version first",
        "the weights are not on gpu-a1 and cannot be copied there: no node holds a ready copy",
        "the version is deprecated: jobs may not use it",
    ]
    assert [text for text in written if messages.parse(text) is None] == []
    with translation.override("zh-hans"):
        assert messages.render("copying the model's files to node cpu-b2: copying (40%)") == \
            "正在将模型文件复制到节点 cpu-b2：复制中（40%）"

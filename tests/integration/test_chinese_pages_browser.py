"""Debian's Chromium, driven by Playwright, with a Chinese browser (zh-CN) against the console that
`make run` starts: after a simulator instance is killed with SIGKILL and restarted, and a node is
unreachable long enough for its alert to fire, the events, job and alert pages show what the system
wrote (verbs, states, the exit cause, the actor, the alert's name, summary and labels) in Chinese."""

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.conftest import require
from tests.integration.procs import CHROMIUM, ROOT, answers_200, free_port, launch_chromium, sign_in, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser]
PASSWORD = "correct-horse-battery"
# Names the test gives, and words that are the same in every language (units, acronyms, products).
ALLOWED = {"admin", "gpu", "local", "zh-chat", "Qwen", "Instruct", "bf16", "SIGKILL", "BooM", "GPU", "NPU", "CPU",
           "SSH", "PID", "API", "URL", "GiB", "MiB", "TTFT", "ITL", "TPOT", "tokens", "UTC", "Python", "curl",
           "openai", "NVIDIA", "HTTP", "ID", "KV", "cache", "token"}  # "KV cache", "token" as in docs/i18n.md
MAIN_TEXT = """() => {
  const main = document.querySelector('main').cloneNode(true);
  // Charts (their axes are plotly's) and identifiers are not what the system wrote.
  main.querySelectorAll('script, style, code, pre, select, .mono, svg, .js-plotly-plot').forEach(el => el.remove());
  return main.innerText;
}"""


def english_words(text: str) -> list[str]:
    text = re.sub(r"https?://\S+|(?<![\w.])/[\w./{}-]*", " ", text)
    words = re.findall(r"[A-Za-z][A-Za-z0-9_.-]*[A-Za-z0-9]", text)
    return sorted({w for w in words if len(re.sub(r"[^A-Za-z]", "", w)) >= 3 and not any(
        part in ALLOWED for part in re.split(r"[-/.]", w)) and w not in ALLOWED})


@pytest.fixture
def console(tmp_path):
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "CONSOLE_DATA_DIR": str(tmp_path / "data"),
           "CONSOLE_ADMIN_PASSWORD": PASSWORD, "HOME": str(tmp_path), "CONSOLE_SECRET_KEY": "chinese-browser",
           "CONSOLE_GATEWAY_PORT": str(free_port())}
    launcher = subprocess.Popen([sys.executable, "-m", "console.launcher"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers_200(f"{base}/healthz"), 120, what="the console to start")

        def shell(code: str) -> str:
            return subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                                  capture_output=True, text=True, check=True, timeout=120).stdout.strip()

        yield base, shell
        # Engines outlive the console on purpose: stop the jobs the test started before the console.
        shell("from jobs import services\nfrom jobs.models import Job\n"
              "for job in Job.objects.all(): services.stop_job(job)")
        wait_until(lambda: shell("from jobs.models import Instance\n"
                                 "print(Instance.objects.active().count())").endswith("0"),
                   120, interval=1, what="the engines to stop")
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()


def test_the_chinese_events_job_and_alert_pages_show_what_the_system_wrote_in_chinese(console):
    require(os.path.exists(CHROMIUM), "Debian's chromium at /usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(sync_playwright is not None, "the playwright Python package")
    base, shell = console
    job_id = int(shell(
        "from models_registry.models import Model, ModelVersion\n"
        "from jobs.services import create_job\n"
        "m, _ = Model.objects.get_or_create(name='Qwen2.5-0.5B-Instruct', defaults={'family': 'qwen'})\n"
        "v, _ = ModelVersion.objects.get_or_create(model=m, version='bf16', defaults={'quantization': 'bf16', "
        "'source_uri': '/models/qwen-0.5b'})\n"
        "job = create_job({'name': 'zh-chat', 'model_version': v, 'engine': 'simulator', 'replicas': 1, "
        "'accelerators_per_replica': 0, 'desired_state': 'running'})\n"
        "print(job.pk)").splitlines()[-1])

    def instance(field: str) -> str:
        return shell(f"from jobs.models import Instance\n"
                     f"i = Instance.objects.filter(job_id={job_id}).first()\n"
                     f"print(getattr(i, {field!r}, None) if i else None)").splitlines()[-1]

    pid = wait_until(lambda: instance("state") == "running" and instance("pid") not in ("None", "") and
                     int(instance("pid")), 120, interval=1, what="the simulator instance to run")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: instance("restart_count") not in ("0", "None") and instance("state") == "running", 120,
               interval=1, what="the instance to be restarted after SIGKILL")
    # A node that cannot be reached (no credential), unreachable for minutes: its built-in alert fires.
    shell("from datetime import timedelta\nfrom django.utils import timezone\n"
          "from console.alerting import evaluator\nfrom nodes.models import Node\nfrom nodes import services\n"
          "n = Node.objects.create(name='gpu-a1', address='127.0.0.1', ssh_port=1, transport='ssh')\n"
          "services.probe_node(n.pk)\n"
          "Node.objects.filter(pk=n.pk).update(status_changed_at=timezone.now() - timedelta(minutes=5))\n"
          "evaluator.evaluate(); evaluator.evaluate(now=timezone.now() + timedelta(seconds=60))")
    alert_id = int(shell("from console.alerting.models import Alert\n"
                         "print(Alert.objects.get(rule__kind='node_unreachable', state='firing').pk)").split()[-1])

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context(locale="zh-CN").new_page()
            sign_in(page, base, PASSWORD)
            seen = {}
            for name, path in (("events", "/events/"), ("job", f"/jobs/{job_id}/"),
                               ("alerts", "/alerts/?state=all"), ("alert", f"/alerts/{alert_id}/")):
                page.goto(f"{base}{path}")
                assert page.evaluate("document.documentElement.lang") == "zh-hans"
                seen[name] = page.evaluate(MAIN_TEXT)
            english = {name: english_words(text) for name, text in seen.items()}
            assert not any(english.values()), english
            assert "被 SIGKILL 信号终止（退出码 137）" in seen["events"] and "系统" in seen["events"]
            assert "状态变化" in seen["events"] and "该节点未设置 SSH 凭据" in seen["events"]
            assert "被 SIGKILL 信号终止（退出码 137）" in seen["job"]
            assert "节点 gpu-a1 不可达" in seen["alerts"] and "节点=gpu-a1" in seen["alerts"]
            assert "节点不可达" in seen["alert"]
            assert "控制台无法连接或登录 gpu-a1：该节点未设置 SSH 凭据" in seen["alert"]
            # The events page's filters and links: only status changes of instances, each linked to its job.
            page.goto(f"{base}/events/")
            page.select_option("select[name=verb]", "status")
            page.select_option("select[name=object_type]", "instance")
            page.click("#event-filters button[type=submit]")
            page.wait_for_url(re.compile(r".*verb=status.*"))
            links = page.eval_on_selector_all("table.events tr.event a", "els => els.map(a => a.pathname)")
            assert links and set(links) == {f"/jobs/{job_id}/"}, links
        finally:
            browser.close()

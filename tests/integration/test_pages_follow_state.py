"""Pages follow state without a reload, in one time zone: Debian's Chromium, driven by Playwright,
against the console that `make run` starts (``python -m console.launcher``).

* a job page follows a ``kill -9`` of its engine: the instance's state, pid, restart count and exit
  cause change on the page, which is never reloaded;
* a node page follows a fixed SSH port: "unreachable" and the connection error give way to "online",
  and the accelerators then found appear in its table and in its chart legends as "GPU 0", "NPU 0";
* in a browser in Asia/Shanghai with a Chinese locale, every timestamp of the job and events pages
  and the chart axis are in that zone, and each says so in its title.
"""

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import FAKE_BIN, require
from tests.integration.procs import CHROMIUM, ROOT, free_port, launch_chromium, sign_in, wait_until
from tests.sshd import SshdNode, require_sshd

pytestmark = [pytest.mark.integration, pytest.mark.browser]
PASSWORD = "correct-horse-battery"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _ok(url):
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def console(tmp_path):
    """The console of `make run`, with a first restart back-off of 3 s (so a restart is seen happening);
    yields (base URL, an API client with the admin's token, manage())."""
    require(os.path.exists(CHROMIUM), "Debian's chromium at /usr/bin/chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require(False, "the playwright Python package")
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "CONSOLE_DATA_DIR": str(tmp_path / "data"),
           "CONSOLE_ADMIN_PASSWORD": PASSWORD, "HOME": str(tmp_path), "CONSOLE_SECRET_KEY": "browser-test",
           "CONSOLE_TELEMETRY_SCRAPE_INTERVAL_S": "1", "CONSOLE_TELEMETRY_INTERVAL_S": "1",
           "CONSOLE_RESTART_BACKOFF_FIRST_S": "3"}
    log = open(tmp_path / "launcher.log", "w")  # noqa: SIM115 - closed in finally
    launcher = subprocess.Popen([sys.executable, "-m", "console.launcher"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    api = None
    try:
        wait_until(lambda: _ok(f"{base}/healthz"), 120, what="the console to start")

        def manage(*args):
            return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                                  text=True, check=True, timeout=60).stdout

        token = manage("drf_create_token", "admin").split()[2]
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Token {token}"}, timeout=20)
        yield base, api, manage
    finally:
        if api is not None:
            api.close()
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
        log.close()


def start_simulator_job(api, manage) -> int:
    version_id = manage("shell", "-c", (
        "from models_registry.models import Model, ModelVersion\n"
        "m, _ = Model.objects.get_or_create(name='Qwen2.5-0.5B-Instruct', defaults={'family': 'qwen'})\n"
        "v, _ = ModelVersion.objects.get_or_create(model=m, version='bf16', defaults={'quantization': 'bf16', "
        "'source_uri': '/models/qwen-0.5b'})\n"
        "print(v.pk)")).strip().splitlines()[-1]
    response = api.post("/jobs/", json={"name": "follow-me", "model_version": int(version_id), "engine": "simulator",
                                        "replicas": 1, "accelerators_per_replica": 0, "desired_state": "running",
                                        "options": {"ttft_ms": 20, "tpot_ms": 3}})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    wait_until(lambda: api.get(f"/jobs/{job_id}/").json()["state"] == "running", 120, interval=0.5,
               what="the simulator job to serve")
    return job_id


def stop_job(api, job_id):
    try:
        api.post(f"/jobs/{job_id}/stop/")
        time.sleep(3)  # the reconciler stops the simulator before the console goes down
    except httpx.HTTPError:
        pass


def browser_page(playwright, base, **context_options):
    browser = launch_chromium(playwright)
    context = browser.new_context(**context_options)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(f"{base}/login/")
    # The first page tells the server the browser's zone (a cookie) and loads once more: wait for that.
    page.wait_for_function("document.cookie.indexOf('boom_tz=') >= 0")
    sign_in(page, base, PASSWORD)
    return browser, page, errors


def instance_row(page) -> dict:
    return page.evaluate("""() => {
        const row = document.querySelector('#instances tr[data-instance]');
        return row ? {id: row.dataset.instance, state: row.dataset.state, pid: row.dataset.pid,
                      restarts: row.dataset.restarts, cause: row.querySelector('[data-cause]').textContent} : null;
    }""")


def test_a_job_page_follows_a_kill_of_its_engine_without_a_reload(console):
    from playwright.sync_api import sync_playwright

    base, api, manage = console
    job_id = start_simulator_job(api, manage)
    try:
        with sync_playwright() as playwright:
            browser, page, errors = browser_page(playwright, base)
            page.goto(f"{base}/jobs/{job_id}/")
            page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
            # A mark that a reload would wipe, and a record of every instance state the page showed.
            page.evaluate("""() => {
                window.__sameDocument = true; window.__states = [];
                setInterval(() => {
                    const row = document.querySelector('#instances tr[data-instance]');
                    if (row && window.__states[window.__states.length - 1] !== row.dataset.state) {
                        window.__states.push(row.dataset.state);
                    }
                }, 50);
            }""")
            before = instance_row(page)
            assert before["state"] == "running" and before["pid"] and before["restarts"] == "0", before
            assert page.get_attribute("#job-state", "data-state") == "running"

            # The first crash restarts at once; the second waits out the first back-off (3 s here), long
            # enough for the page to show the instance restarting, with its cause.
            pid = before["pid"]
            for restarts in ("1", "2"):
                killed_at = time.monotonic()
                os.kill(int(pid), signal.SIGKILL)
                after = wait_until(lambda: (row := instance_row(page)) and row["restarts"] == restarts  # noqa: B023
                                   and row["state"] == "running" and row["pid"] not in ("", pid) and row,  # noqa: B023
                                   120, interval=0.3, what=f"the page to show restart {restarts}")
                assert "SIGKILL" in after["cause"], after
                print(f"kill -9 #{restarts}: the page showed the new pid {time.monotonic() - killed_at:.1f} s later")
                pid = after["pid"]
            states = page.evaluate("window.__states")
            assert states[0] == "running" and states[-1] == "running"
            assert "restarting" in states, f"the page never showed the restart: {states}"
            assert page.get_attribute("#job-state", "data-state") == "running"
            assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
            assert int(page.get_attribute("body", "data-live-refreshes")) >= 2
            updated = page.get_attribute("#live-updated", "data-updated-at")
            assert updated and abs(int(updated) / 1000 - time.time()) < 30
            assert page.evaluate("document.getElementById('live-updated').textContent").strip()
            # The timeline below gained the events of the restart, also without a reload.
            assert "SIGKILL" in page.inner_text("#job-timeline") or "restarting" in page.inner_text("#job-timeline")
            assert not errors, errors
            browser.close()
    finally:
        stop_job(api, job_id)


def test_a_node_page_follows_a_fixed_port_from_unreachable_to_online(console):
    from playwright.sync_api import sync_playwright

    require_sshd()
    base, api, _manage = console
    # Fake nvidia-smi and npu-smi on the node's PATH: it has GPUs and NPUs once it is reached.
    with SshdNode(env={"PATH": f"{FAKE_BIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}) as sshd:
        credential = api.post("/credentials/", json={"name": "follow-key", "username": sshd.username,
                                                     "private_key": sshd.client_key_pem})
        assert credential.status_code == 201, credential.text
        wrong_port = free_port()  # nothing listens there
        created = api.post("/nodes/", json={"name": "ssh-follow", "address": "127.0.0.1", "transport": "ssh",
                                            "ssh_port": wrong_port, "credential": credential.json()["id"]})
        assert created.status_code == 201, created.text
        node_id = created.json()["id"]
        wait_until(lambda: api.get(f"/nodes/{node_id}/").json()["status"] == "unreachable", 60,
                   what="the node on a closed port to be unreachable")
        with sync_playwright() as playwright:
            browser, page, errors = browser_page(playwright, base)
            page.goto(f"{base}/nodes/{node_id}/")
            page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
            page.evaluate("window.__sameDocument = true")
            assert page.get_attribute("#node-status", "data-status") == "unreachable"
            error = page.inner_text("#node-status-detail")
            assert error.strip(), "the page shows no connection error"

            fixed_at = time.monotonic()
            fixed = api.patch(f"/nodes/{node_id}/", json={"ssh_port": sshd.port})
            assert fixed.status_code == 200, fixed.text

            page.wait_for_selector('#node-status[data-status="online"]', timeout=60_000)
            print(f"fixed port: the page showed online {time.monotonic() - fixed_at:.1f} s later")
            assert page.query_selector("#node-status-detail") is None, page.inner_text("#node-status-detail")
            assert "unreachable" not in page.inner_text("#node-head").lower()
            # The history table below shows the change too.
            assert "online" in page.inner_text("#node-history").lower()
            # The accelerators found by that probe: in the table, and streamed into the charts, whose
            # legends name them by kind and index ("GPU 0", "NPU 3"), not by database id.
            page.wait_for_selector("#accelerators td[data-acc]", timeout=30_000)

            def legend():
                return page.evaluate("window.boomLive.charts['acc-utilization_percent'].traces.map(t => t.name)")

            names = wait_until(lambda: (n := legend()) and all(re.fullmatch(r"(GPU|NPU) \d+", x) for x in n) and n,
                               60, interval=0.5, what=f"the accelerator legends to be named (now {legend()})")
            assert len(set(names)) == len(names), names
            assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
            assert not errors, errors
            browser.close()


def test_one_time_zone_across_the_job_and_events_pages_and_the_chart_axis(console):
    from playwright.sync_api import sync_playwright

    base, api, manage = console
    job_id = start_simulator_job(api, manage)
    try:
        with sync_playwright() as playwright:
            browser, page, errors = browser_page(playwright, base, timezone_id="Asia/Shanghai", locale="zh-CN")
            assert page.get_attribute("html", "lang") == "zh-hans"
            page.goto(f"{base}/jobs/{job_id}/")
            page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
            assert page.get_attribute("body", "data-tz") == "Asia/Shanghai"

            def times():
                return page.evaluate("""() => [...document.querySelectorAll('time[datetime]')].map(
                    t => ({iso: t.getAttribute('datetime'), text: t.textContent.trim(), title: t.title}))""")

            def check(stamps):
                assert stamps, "no timestamp on the page"
                for stamp in stamps:
                    utc = dt.datetime.strptime(stamp["iso"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
                    local = utc.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
                    assert stamp["text"] == local, stamp
                    assert stamp["title"] == f"{local} CST (Asia/Shanghai)", stamp

            check(times())
            # The chart's time axis: labelled with the zone, and its right end is now in Shanghai.
            wait_until(lambda: page.evaluate("document.getElementById('chart-job-tokens')._fullLayout !== undefined"),
                       20, what="the chart to be drawn")
            axis = page.evaluate("""() => {
                const x = document.getElementById('chart-job-tokens')._fullLayout.xaxis;
                return {title: x.title.text, end: x.range[1]};
            }""")
            assert "Asia/Shanghai" in axis["title"], axis
            end = dt.datetime.strptime(axis["end"][:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
            assert abs((end - dt.datetime.now(dt.UTC)).total_seconds()) < 30, (axis, dt.datetime.now(dt.UTC))
            # The newest event of the timeline and the axis agree to within the job's age.
            newest = max(dt.datetime.strptime(s["text"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
                         for s in times())
            assert 0 <= (end - newest).total_seconds() < 600, (end, newest)

            page.goto(f"{base}/events/")
            check(times())
            # The other pages that follow state: live, and their times in the same zone.
            for path in ("/", "/jobs/", "/nodes/", "/alerts/?state=all", "/jobs/benchmarks/"):
                page.goto(base + path)
                page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
                for stamp in times():
                    assert stamp["title"].endswith("(Asia/Shanghai)"), (path, stamp)
            assert not errors, errors
            browser.close()
    finally:
        stop_job(api, job_id)

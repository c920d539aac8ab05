"""Issue 17's "Done when", as far as the browser goes: a new user in a China time zone with a Chinese
browser opens a fresh console of `make run` (``python -m console.launcher``), follows the first-run
guide (load the starter catalog, deploy the simulator from the job form), watches the new job's page
go from pending to running, kills the engine with ``kill -9`` and sees the page follow the restart
without a reload, with every timestamp of the page, the "updated" moment and the chart axis in
Asia/Shanghai. Debian's Chromium, driven by Playwright. (The Chinese of what the system writes is
checked elsewhere.)"""

import datetime as dt
import os
import re
import signal
import time

import pytest

from tests.integration.procs import wait_until
from tests.integration.test_pages_follow_state import (  # noqa: F401 - console is a fixture
    browser_page,
    console,
    instance_row,
    stop_job,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def page_times(page) -> list[dict]:
    return page.evaluate("""() => [...document.querySelectorAll('time[datetime]')].map(
        t => ({iso: t.getAttribute('datetime'), text: t.textContent.trim(), title: t.title}))""")


def assert_all_in_shanghai(page, where: str) -> int:
    """Every <time> of the page reads the Shanghai wall time of its instant and says so in its title."""
    stamps = page_times(page)
    for stamp in stamps:
        utc = dt.datetime.strptime(stamp["iso"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        local = utc.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
        assert stamp["title"] == f"{local} CST (Asia/Shanghai)", (where, stamp)
        # A date-and-time text is (part of) the zone's wall time; relative ones ("3 分钟前") have the title.
        assert stamp["text"] and (stamp["text"] in local or not re.fullmatch(r"[\d:\- ]+", stamp["text"])), \
            (where, stamp)
    updated = page.get_attribute("#live-updated", "title")
    assert updated and updated.endswith("(Asia/Shanghai)"), (where, updated)
    return len(stamps)


def test_a_new_user_in_shanghai_deploys_the_simulator_from_the_guide_and_watches_a_kill_in_one_zone(console):  # noqa: F811
    from playwright.sync_api import sync_playwright

    base, api, _manage = console
    job_id = None
    try:
        with sync_playwright() as playwright:
            browser, page, errors = browser_page(playwright, base, timezone_id="Asia/Shanghai", locale="zh-CN")
            assert page.get_attribute("html", "lang") == "zh-hans"
            assert page.get_attribute("body", "data-tz") == "Asia/Shanghai"

            # The empty overview shows the guide: the local node is there, no model, no job.
            guide = page.wait_for_selector("#first-run-guide", timeout=30_000)
            steps = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
                '#first-run-guide li[data-step]')].map(li => [li.dataset.step, li.classList.contains('done')]))""")
            assert steps == {"node": True, "model": False, "job": False}, steps
            assert guide.is_visible()

            # Step 2 from the guide: load the starter catalog (it answers on the model list).
            page.click('#first-run-guide li[data-step="model"] form button[type=submit]')
            page.wait_for_url(re.compile(r".*/models/$"))
            assert page.query_selector("ul.messages li") is not None, "loading the catalog said nothing"
            page.goto(f"{base}/")
            assert page.get_attribute('#first-run-guide li[data-step="model"]', "class") == "done"

            # Step 3: "Deploy the simulator" opens the job form with the simulator and no accelerator.
            page.click('#first-run-guide li[data-step="job"] a[href*="engine=simulator"]')
            page.wait_for_url(re.compile(r".*/jobs/add/\?.*engine=simulator.*"))
            assert page.eval_on_selector("select[name=engine]", "s => s.value") == "simulator"
            assert page.eval_on_selector("input[name=accelerators_per_replica]", "i => i.value") == "0"
            page.fill("input[name=name]", "shanghai-sim")
            options = page.eval_on_selector_all("select[name=model_version] option",
                                                "os => os.map(o => ({value: o.value, text: o.textContent}))")
            chosen = next((o for o in options if o["value"] and "Qwen" in o["text"]),
                          next(o for o in options if o["value"]))
            page.select_option("select[name=model_version]", chosen["value"])
            # The local node is placeable once its first probe ended (the guide ticks "node" as soon as it is
            # registered); until then the form rightly warns that nothing can be placed now.
            wait_until(lambda: [n["status"] for n in api.get("/nodes/").json()["results"]] == ["online"], 120,
                       what="the local node's first probe")
            created_at = time.monotonic()
            page.click("#job-form button[type=submit]")
            page.wait_for_url(re.compile(r".*/jobs/(\d+)/$"), timeout=60_000)
            job_id = int(re.search(r"/jobs/(\d+)/$", page.url).group(1))
            page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
            page.evaluate("window.__sameDocument = true")

            # The new job's page follows it from pending to running, without a reload.
            running = wait_until(lambda: (row := instance_row(page)) and row["state"] == "running" and row["pid"]
                                 and row, 120, interval=0.3, what="the job page to show its instance running")
            print(f"new job: the page showed it running {time.monotonic() - created_at:.1f} s after the form")
            wait_until(lambda: page.get_attribute("#job-state", "data-state") == "running", 60, interval=0.3,
                       what="the job's state to read running")
            assert page.evaluate("window.__sameDocument") is True, "the job page was reloaded"

            # kill -9 the engine: the page shows the restart, its cause and the new pid, without a reload.
            killed_at = time.monotonic()
            os.kill(int(running["pid"]), signal.SIGKILL)
            after = wait_until(lambda: (row := instance_row(page)) and row["restarts"] == "1"
                               and row["state"] == "running" and row["pid"] not in ("", running["pid"]) and row,
                               120, interval=0.3, what="the job page to show the restart")
            print(f"kill -9: the page showed the new pid {time.monotonic() - killed_at:.1f} s later")
            assert "SIGKILL" in after["cause"], after
            assert page.evaluate("window.__sameDocument") is True, "the job page was reloaded"
            assert int(page.get_attribute("body", "data-live-refreshes")) >= 2

            # One zone across the page: every timestamp (the re-read regions' too), "updated", the chart axis.
            assert assert_all_in_shanghai(page, "job") >= 2
            wait_until(lambda: page.evaluate("document.getElementById('chart-job-tokens')._fullLayout !== undefined"),
                       30, what="the chart to be drawn")
            axis = page.evaluate("document.getElementById('chart-job-tokens')._fullLayout.xaxis.range[1]")
            title = page.evaluate("document.getElementById('chart-job-tokens')._fullLayout.xaxis.title.text")
            assert "Asia/Shanghai" in title, title
            end = dt.datetime.strptime(axis[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
            assert abs((end - dt.datetime.now(dt.UTC)).total_seconds()) < 60, axis

            # The version it serves and the overview: live, in the same zone; the guide is gone.
            page.goto(f"{base}/models/versions/{chosen['value']}/")
            page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
            assert_all_in_shanghai(page, "version")
            page.goto(f"{base}/")
            page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
            assert page.query_selector("#first-run-guide") is None
            assert_all_in_shanghai(page, "overview")
            assert not errors, errors
            browser.close()
    finally:
        if job_id is not None:
            stop_job(api, job_id)


def test_the_version_page_follows_an_import_and_a_verification_without_a_reload(console, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from tests.models_registry.conftest import write_safetensors_dir

    base, api, _manage = console
    directory = write_safetensors_dir(tmp_path / "tiny-llama")
    with open(directory / "blob.dat", "wb") as f:
        f.truncate(3 << 30)  # sparse: a few seconds of hashing, so that the progress is seen moving
    model = api.post("/models/", json={"name": "Tiny-Llama", "family": "llama"})
    assert model.status_code == 201, model.text
    with sync_playwright() as playwright:
        browser, page, errors = browser_page(playwright, base, timezone_id="Asia/Shanghai", locale="zh-CN")
        version = api.post("/model-versions/", json={"model": model.json()["id"], "version": "bf16",
                                                      "source_uri": str(directory)})
        assert version.status_code == 201, version.text
        version_id = version.json()["id"]
        page.goto(f"{base}/models/versions/{version_id}/")
        page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
        page.evaluate("window.__sameDocument = true")
        # The import (background) lists the files in the page, which is not reloaded.
        try:
            wait_until(lambda: page.query_selector("#files td.mono") is not None, 120, interval=0.5,
                       what="the page to list the imported files")
        except AssertionError as exc:
            state = api.get(f"/model-versions/{version_id}/").json()
            raise AssertionError(f"{exc}: the API says {state}; the page: {page.inner_text('#version-head')}") from None
        wait_until(lambda: page.get_attribute("#live", "data-working") == "0", 60, interval=0.3,
                   what="the progress card to go once the import ended")
        assert page.evaluate("window.__sameDocument") is True, "the version page was reloaded"
        files = len(page.query_selector_all("#files td.mono:first-child"))
        assert files == 5, files

        page.click("#verify")  # a form: the answer is a new page, which then follows the verification
        page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
        page.evaluate("""() => {
            window.__sameDocument = true; window.__progress = []; window.__statuses = [];
            setInterval(() => {
                const card = document.getElementById('live'), badge = document.getElementById('version-status');
                const p = card && card.getAttribute('data-progress');
                if (p !== null && window.__progress[window.__progress.length - 1] !== p) { window.__progress.push(p); }
                const s = badge && badge.dataset.status;
                if (s && window.__statuses[window.__statuses.length - 1] !== s) { window.__statuses.push(s); }
            }, 50);
        }""")
        started = time.monotonic()
        page.wait_for_selector('#version-status[data-status="verified"]', timeout=180_000)
        print(f"verification: the page showed verified {time.monotonic() - started:.1f} s after the click, "
              f"progress seen {page.evaluate('window.__progress')}")
        wait_until(lambda: len(page.query_selector_all("#files .badge.mv-verified")) == files, 30, interval=0.3,
                   what="the files' checksums on the page")
        assert page.evaluate("window.__sameDocument") is True, "the version page was reloaded"
        statuses = page.evaluate("window.__statuses")
        assert statuses[-1] == "verified", statuses
        progress = [float(p) for p in page.evaluate("window.__progress")]
        assert progress == sorted(progress) and progress and progress[0] < 1, progress
        assert page.get_attribute("#live", "data-working") == "0"
        assert_all_in_shanghai(page, "version")
        assert "verified" in page.inner_text("#version-history").lower() or \
            len(page.query_selector_all("#version-history time")) >= 2
        assert not errors, errors
        browser.close()


def test_a_benchmark_page_follows_its_progress_results_and_charts_without_a_reload(console):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from tests.integration.test_pages_follow_state import start_simulator_job

    base, api, manage = console
    job_id = start_simulator_job(api, manage)
    try:
        with sync_playwright() as playwright:
            browser, page, errors = browser_page(playwright, base, timezone_id="Asia/Shanghai", locale="zh-CN")
            run = api.post("/benchmarks/", json={"job": job_id, "concurrency": [1, 2], "requests_per_level": 60,
                                                 "input_tokens": 16, "output_tokens": 32})
            assert run.status_code in (201, 202), run.text
            run_id = run.json()["id"]
            page.goto(f"{base}/jobs/benchmarks/{run_id}/")
            page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
            page.evaluate("""() => {
                window.__sameDocument = true; window.__percents = []; window.__statuses = [];
                setInterval(() => {
                    const p = document.getElementById('benchmark-live').dataset.progress;
                    if (window.__percents[window.__percents.length - 1] !== p) { window.__percents.push(p); }
                    const s = document.getElementById('bench-status').dataset.status;
                    if (window.__statuses[window.__statuses.length - 1] !== s) { window.__statuses.push(s); }
                }, 50);
            }""")
            page.wait_for_selector('#bench-status[data-status="succeeded"]', timeout=180_000)
            # The result table and the charts' data came with the re-reads; the charts were drawn again.
            wait_until(lambda: len(page.query_selector_all("#benchmark-results tr")) >= 3, 30, interval=0.3,
                       what="the two levels in the result table")
            draws = page.evaluate("[...document.querySelectorAll('[data-figure]')].map(d => +d.dataset.draws)")
            assert draws and all(n >= 2 for n in draws), draws
            points = page.evaluate("document.querySelector('[data-figure]').data[0].x.length")
            assert points == 2, points
            percents = [int(p) for p in page.evaluate("window.__percents")]
            statuses = page.evaluate("window.__statuses")
            print(f"benchmark: statuses {statuses}, progress seen {percents}")
            assert percents == sorted(percents) and len(set(percents)) >= 3, percents
            assert statuses[-1] == "succeeded" and "running" in statuses, statuses
            assert page.evaluate("window.__sameDocument") is True, "the benchmark page was reloaded"
            assert_all_in_shanghai(page, "benchmark")
            assert not errors, errors
            browser.close()
    finally:
        stop_job(api, job_id)


def test_an_alert_page_follows_its_notification_from_a_failed_attempt_to_delivered_without_a_reload(console):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from tests.alerting.conftest import Receiver

    base, api, _manage = console
    receiver = Receiver()
    receiver.script(500, 500)  # two attempts fail; the third, about 30 s after the first, is delivered
    try:
        channel = api.post("/notification-channels/", json={"name": "hook", "kind": "webhook", "url": receiver.url})
        assert channel.status_code == 201, channel.text
        rule = api.post("/alert-rules/", json={
            "name": "Local node is up", "kind": "threshold", "series": "node.cpu_percent", "comparator": ">=",
            "threshold": 0, "for_seconds": 0, "severity": "info", "group_wait_s": 0,
            "summary_template": "{{ labels.node_name }} answers"})
        assert rule.status_code == 201, rule.text
        alert = wait_until(lambda: next(iter(api.get("/alerts/", params={"rule": rule.json()["id"]}).json()
                                             .get("results", [])), None), 120, interval=0.5,
                           what="the rule's alert")
        with sync_playwright() as playwright:
            browser, page, errors = browser_page(playwright, base, timezone_id="Asia/Shanghai", locale="zh-CN")
            page.goto(f"{base}/alerts/{alert['id']}/")
            page.wait_for_selector('#stream-status[data-state="live"]', timeout=30_000)
            page.evaluate("window.__sameDocument = true")
            assert page.query_selector("#alert-body .badge.notif-delivered") is None, "delivered before the test"
            page.wait_for_selector("#alert-body .badge.notif-delivered", timeout=120_000)
            assert [r["status"] for r in receiver.requests[:3]] == [500, 500, 200], receiver.requests
            assert page.evaluate("window.__sameDocument") is True, "the alert page was reloaded"
            assert int(page.get_attribute("body", "data-live-refreshes")) >= 1
            assert_all_in_shanghai(page, "alert")
            assert not errors, errors
            browser.close()
    finally:
        receiver.close()

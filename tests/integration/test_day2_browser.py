"""A day-2 flow in Debian's Chromium against the console `make run` starts (issue 17): an admin scales a
running simulator job from its page and two replicas serve, deletes a node after confirming with a reason
that the event log keeps, and stops the job through its confirmation. No API call does the work."""

import os

import httpx
import pytest

from tests.conftest import require
from tests.integration.procs import launch_chromium, sign_in, wait_until
from tests.integration.test_live_browser import CHROMIUM, PASSWORD, console, start_simulator_job  # noqa: F401
from tests.nodes.keygen import ed25519_openssh

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_an_admin_scales_a_job_deletes_a_node_with_a_reason_and_stops_the_job_in_the_browser(console):  # noqa: F811
    require(os.path.exists(CHROMIUM), "Debian's chromium at /usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(sync_playwright is not None, "the playwright Python package")
    base, token, manage = console
    api = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Token {token}"}, timeout=10)
    job_id, _endpoint = start_simulator_job(base, token, manage)
    credential = api.post("/credentials/", json={"name": "rack-key", "username": "root",
                                                 "private_key": ed25519_openssh()})
    assert credential.status_code == 201, credential.text
    node = api.post("/nodes/", json={"name": "retired-box", "address": "127.0.0.1", "transport": "ssh",
                                     "ssh_port": 1, "credential": credential.json()["id"]})
    assert node.status_code == 201, node.text
    node_id = node.json()["id"]
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
            sign_in(page, base, PASSWORD)

            # Scale 1 -> 2 from the job page; the reconciler starts a second simulator.
            page.goto(f"{base}/jobs/{job_id}/")
            page.fill("#scale-replicas", "2")
            page.click("#scale-job")
            page.wait_for_url(f"{base}/jobs/{job_id}/")
            assert "scaled from 1 to 2 replicas" in page.inner_text(".messages")

            def two_serving():
                job = api.get(f"/jobs/{job_id}/").json()
                return job["replicas"] == 2 and job["state"] == "running" and len(job["endpoints"]) == 2

            wait_until(two_serving, 90, interval=0.5, what="two replicas to serve after scaling")

            # Delete the node: a confirmation page with a reason first, then the list.
            page.goto(f"{base}/nodes/{node_id}/")
            page.click("#delete-node")
            page.wait_for_selector("#confirm-form")
            assert api.get(f"/nodes/{node_id}/").status_code == 200  # asking deleted nothing
            page.fill("input[name=reason]", "decommissioned after the rack move")
            page.click("#confirm-button")
            page.wait_for_url(f"{base}/nodes/")
            assert "Node retired-box deleted." in page.inner_text(".messages")
            assert api.get(f"/nodes/{node_id}/").status_code == 404
            events = api.get("/events/", params={"object_type": "node", "object_id": node_id, "verb": "delete"}).json()
            assert [e["detail"] for e in events["results"]] == [
                {"name": "retired-box", "reason": "decommissioned after the rack move"}]
            assert events["results"][0]["actor"] == "admin"

            # Stop the job through its confirmation.
            page.goto(f"{base}/jobs/{job_id}/")
            page.click("#stop-job")
            page.fill("input[name=reason]", "end of the test")
            page.click("#confirm-button")
            page.wait_for_url(f"{base}/jobs/{job_id}/")
            assert api.get(f"/jobs/{job_id}/").json()["desired_state"] == "stopped"
            stop = api.get("/events/", params={"object_type": "job", "object_id": job_id, "verb": "stop"}).json()
            assert stop["results"][0]["detail"] == {"reason": "end of the test"}
            assert not errors, errors
            browser.close()
    finally:
        api.post(f"/jobs/{job_id}/stop/")
        wait_until(lambda: not api.get(f"/jobs/{job_id}/").json()["endpoints"], 30, interval=0.5,
                   what="the simulators to stop before the console goes down")
        api.close()

"""The outbound policy (issue 13, findings 3 and 9): benchmarks target the console's own instances or networks an
admin allows, no redirect is followed, and the bodies of foreign services never reach viewers."""

import asyncio
import http.server
import threading

import pytest

from console.alerting.models import NotificationChannel
from jobs.benchmarks import generator, services
from tests.alerting.conftest import make_channel
from tests.jobs.test_benchmarks import serving_job

pytestmark = pytest.mark.django_db

SECRET = "internal-secret-token-42"


class Foreign:
    """A loopback HTTP service that redirects GETs elsewhere and answers POSTs with a 500 holding a secret."""

    def __init__(self):
        self.hits: list[str] = []
        foreign = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                foreign.hits.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if self.path.startswith("/elsewhere"):
                    status, body = 200, b'{"data": [{"id": "' + SECRET.encode() + b'"}]}'
                elif self.command == "GET":
                    status, body = 302, b""
                else:
                    status, body = 500, SECRET.encode()
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "/elsewhere" + self.path)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def foreign():
    service = Foreign()
    yield service
    service.close()


def test_a_benchmark_may_not_target_a_url_outside_the_consoles_instances_or_the_allowed_networks(
        operator_api, settings, monkeypatch):
    monkeypatch.setattr(services.enqueue, "run_benchmark", lambda pk: None)
    for url in ("http://127.0.0.1:6379/v1", "http://169.254.169.254/latest", "http://10.0.0.5:8000/v1"):
        response = operator_api.post("/api/v1/benchmarks/", {"endpoint_url": url}, format="json")
        assert response.status_code == 400 and "endpoint_url" in response.json(), (url, response.content)
    settings.CONSOLE_BENCHMARK_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert operator_api.post("/api/v1/benchmarks/", {"endpoint_url": "http://10.0.0.5:8000/v1"},
                             format="json").status_code == 202
    assert operator_api.post("/api/v1/benchmarks/", {"endpoint_url": "http://127.0.0.1:6379/v1"},
                             format="json").status_code == 400


def test_a_benchmark_may_target_the_endpoint_of_one_of_the_consoles_instances(operator_api, monkeypatch):
    monkeypatch.setattr(services.enqueue, "run_benchmark", lambda pk: None)
    serving_job(18555)
    response = operator_api.post("/api/v1/benchmarks/", {"endpoint_url": "http://127.0.0.1:18555/v1"},
                                 format="json")
    assert response.status_code == 202, response.content


def test_a_benchmark_follows_no_redirect_and_keeps_no_foreign_body(foreign):
    spec = generator.LoadSpec(endpoints=(foreign.url + "/v1",), model="m", request_timeout_s=5)
    with pytest.raises(generator.ProbeError) as error:
        asyncio.run(generator.probe(generator.LoadSpec(endpoints=(foreign.url + "/v1",), request_timeout_s=5)))
    assert "HTTP 302" in str(error.value) and SECRET not in str(error.value)
    assert not any("elsewhere" in hit for hit in foreign.hits)

    async def one():
        async with generator._session(spec, 1) as session:
            return await generator.send_one(session, spec, 0, generator.Prompt(text="hi", max_tokens=2,
                                                                              input_tokens=1))

    result = asyncio.run(one())
    assert not result.ok and result.error_kind == "http_500" and SECRET not in result.error


def test_notification_urls_never_target_link_local_addresses(admin_api):
    for url in ("http://169.254.169.254/latest/meta-data", "http://[fe80::1]/hook"):
        response = admin_api.post("/api/v1/notification-channels/", {"name": "meta", "kind": "webhook", "url": url},
                                  format="json")
        assert response.status_code == 400 and "url" in response.json(), response.content
    assert not NotificationChannel.objects.exists()


def test_private_notification_urls_are_allowed_by_default_and_refused_when_the_setting_says_so(admin_api, settings):
    body = {"name": "internal", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}
    assert admin_api.post("/api/v1/notification-channels/", body, format="json").status_code == 201
    settings.CONSOLE_NOTIFY_ALLOW_PRIVATE = False
    for url in ("http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://192.168.0.1/hook"):
        response = admin_api.post("/api/v1/notification-channels/", {**body, "name": "x", "url": url}, format="json")
        assert response.status_code == 400 and "CONSOLE_NOTIFY_ALLOW_PRIVATE" in response.json()["url"][0]


def test_a_delivery_to_a_refused_address_fails_permanently_without_a_request(settings):
    from console.alerting.notifiers.base import NotifyError, post_json

    settings.CONSOLE_NOTIFY_ALLOW_PRIVATE = False
    with pytest.raises(NotifyError) as error:
        post_json("http://127.0.0.1:9/hook", {}, timeout=1)
    assert error.value.permanent and "outbound policy" in error.value.message


def test_viewers_never_read_the_body_of_a_receiver_in_delivery_attempts(operator_api, viewer_api, foreign):
    channel = make_channel("webhook", foreign.url + "/hook")
    answer = operator_api.post(f"/api/v1/notification-channels/{channel.pk}/test/").json()
    assert answer["delivered"] is False and "HTTP 500" in answer["attempt"]["error"]
    attempts = viewer_api.get(f"/api/v1/notification-channels/{channel.pk}/attempts/")
    assert attempts.status_code == 200 and SECRET not in attempts.content.decode()
    assert SECRET not in str(answer)

"""Issue 13, findings 5, 7, 8 and 10: login lockout and API throttles, allowed hosts and the websocket
Origin, the schema behind login, TLS-proxy switches, the Content-Security-Policy, http(s)-only URL fields,
spreadsheet-safe CSV, text (not HTML) for server data in scripts, the bootstrap password validated."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from axes.models import AccessAttempt
from channels.testing import WebsocketCommunicator
from django.contrib.admin.sites import site as admin_site
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.utils import timezone

from console.alerting.models import AlertRule, NotificationChannel
from console.core.env import allowed_hosts_for_bind
from console.core.models import Event
from console.core.security import csv_safe
from jobs.benchmarks import export
from jobs.models import BenchmarkRun

ROOT = Path(__file__).resolve().parents[2]


# --- finding 5: brute force -------------------------------------------------------------------------


def login(client, password, address="10.0.0.7"):
    return client.post("/login/", {"username": "alice", "password": password}, REMOTE_ADDR=address)


def test_ten_wrong_passwords_lock_out_that_user_name_from_that_address_even_with_the_right_one(db, client):
    User.objects.create_user("alice", password="the-right-password")
    for _ in range(10):
        assert login(client, "wrong").status_code in (200, 429)
    locked = login(client, "the-right-password")
    assert locked.status_code == 429 and "_auth_user_id" not in client.session
    assert b"Too many failed logins" in locked.content
    # Another address is not locked out: the lockout is per user name and address.
    assert login(client, "the-right-password", address="10.0.0.8").status_code == 302


def test_a_lockout_is_written_to_the_audit_log_and_listed_for_admins(db, client):
    User.objects.create_user("alice", password="the-right-password")
    for _ in range(10):
        login(client, "wrong")
    event = Event.objects.get(verb="login.locked_out")
    assert event.detail == {"username": "alice", "ip_address": "10.0.0.7"}
    assert event.source_address == "10.0.0.7"
    assert AccessAttempt.objects.get(username="alice").failures_since_start == 10
    admin = User.objects.create_superuser("root", password="x-unused-pw")
    client.force_login(admin)
    page = client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200 and b"alice" in page.content


def test_an_api_client_past_its_rate_is_answered_429(settings, viewer_api):
    settings.CONSOLE_API_THROTTLE_USER = "3/minute"
    cache.clear()
    codes = [viewer_api.get("/api/v1/nodes/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    settings.CONSOLE_API_THROTTLE_USER = None
    assert viewer_api.get("/api/v1/nodes/").status_code == 200


def test_the_default_api_rates_are_generous_and_set_by_the_environment():
    out = settings_in_subprocess({"CONSOLE_API_THROTTLE_USER": "50/second"},
                                 "CONSOLE_API_THROTTLE_ANON", "CONSOLE_API_THROTTLE_USER")
    assert out == ["120/minute", "50/second"]


# --- finding 7: hosts and the websocket Origin ------------------------------------------------------


def settings_in_subprocess(env: dict, *names: str):
    """The named settings as a fresh process computes them from ``env`` (settings are read at import)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("CONSOLE_ALLOWED", "BIND", "CONSOLE_TLS", "CONSOLE_HSTS", "CONSOLE_API_THROTTLE"))}
    code = ("import django, json; from django.conf import settings; django.setup(); "
            f"print(json.dumps([getattr(settings, n, None) for n in {list(names)!r}]))")
    env = {**base, **env, "DJANGO_SETTINGS_MODULE": "console.settings"}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_allowed_hosts_follow_the_bind_address_and_are_never_any_host_by_default():
    assert settings_in_subprocess({}, "ALLOWED_HOSTS") == [["localhost", "127.0.0.1", "[::1]"]]
    assert allowed_hosts_for_bind("127.0.0.1") == ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts_for_bind("10.1.2.3") == ["10.1.2.3", "localhost", "127.0.0.1", "[::1]"]
    everywhere = allowed_hosts_for_bind("0.0.0.0")
    assert "*" not in everywhere and os.uname().nodename in everywhere and "127.0.0.1" in everywhere
    assert settings_in_subprocess({"BIND": "0.0.0.0", "CONSOLE_ALLOWED_HOSTS": "console.example.com"},
                                  "ALLOWED_HOSTS") == [["console.example.com"]]


def open_socket(origin: bytes | None):
    from console.asgi import application

    async def scenario():
        headers = [(b"origin", origin)] if origin is not None else []
        communicator = WebsocketCommunicator(application, "/ws/stream/", headers=headers)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    return async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_a_websocket_from_a_foreign_origin_is_refused_and_one_from_the_console_is_accepted(settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://console.example.com"]
    assert open_socket(b"http://evil.example") is False
    assert open_socket(b"null") is False
    assert open_socket(b"https://console.example.com.evil.example") is False
    assert open_socket(b"http://127.0.0.1:8000") is True
    assert open_socket(b"http://[::1]:8000") is True
    assert open_socket(b"https://console.example.com") is True
    # No Origin: not a browser (a script with a token), which carries no victim's cookie.
    assert open_socket(None) is True


# --- finding 8: the schema and the docs --------------------------------------------------------------


def test_the_schema_and_api_docs_need_a_viewer(client, make_user):
    assert client.get("/api/schema/").status_code in (401, 403)
    docs = client.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"].startswith("/login/")
    client.force_login(make_user(None))
    assert client.get("/api/schema/").status_code == 403
    client.force_login(make_user("viewer"))
    assert client.get("/api/schema/").status_code == 200
    page = client.get("/api/docs/")
    assert page.status_code == 200 and b"<script>" not in page.content
    assert client.get("/api/docs/?script").status_code == 200


# --- finding 10: TLS, CSP, URLs, CSV, scripts, the bootstrap password ---------------------------------


def test_behind_a_tls_proxy_cookies_are_secure_and_hsts_and_the_proxy_header_are_on():
    names = ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS")
    assert settings_in_subprocess({}, *names) == [False, False, None, 0]
    assert settings_in_subprocess({"CONSOLE_TLS_PROXY": "true"}, *names) == [
        True, True, ["HTTP_X_FORWARDED_PROTO", "https"], 31536000]
    assert settings_in_subprocess({"CONSOLE_TLS_PROXY": "true", "CONSOLE_HSTS_SECONDS": "600"},
                                  "SECURE_HSTS_SECONDS") == [600]


def test_a_request_through_the_tls_proxy_gets_hsts_and_secure_cookies(db, client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 600
    settings.CSRF_COOKIE_SECURE = True
    response = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response["Strict-Transport-Security"] == "max-age=600"
    assert response.cookies["csrftoken"]["secure"]


def test_every_page_carries_a_content_security_policy_with_no_inline_script(db, client):
    policy = client.get("/login/")["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'" and directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"


def test_no_template_holds_an_inline_script_or_an_event_handler_attribute():
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag and "application/json" not in tag:
                offenders.append(f"{path.relative_to(ROOT)}: {tag}")
        offenders += [f"{path.relative_to(ROOT)}: {m}" for m in re.findall(r"\son[a-z]+\s*=", text)]
        if "javascript:" in text:
            offenders.append(f"{path.relative_to(ROOT)}: javascript:")
    assert offenders == []


def test_no_script_parses_text_as_html():
    offenders = [p.name for p in (ROOT / "static" / "js").glob("*.js")
                 if re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", p.read_text())]
    assert offenders == []


def test_a_javascript_runbook_url_is_refused_by_the_model_and_the_admin_site(db):
    rule = AlertRule(name="r", kind="threshold", series="node.cpu_percent", comparator=">", threshold=90,
                     runbook_url="javascript:alert(document.cookie)")
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert "runbook_url" in refused.value.message_dict
    rule.runbook_url = "https://wiki.example.com/runbooks/cpu"
    rule.full_clean()
    rule.save()
    # Through the admin site's form, as an admin would save it.
    request = RequestFactory().get("/admin/")
    request.user = User.objects.create_superuser("root", password="x-unused-pw")
    form_class = admin_site._registry[AlertRule].get_form(request, rule)
    unbound = form_class(instance=rule)
    data = {name: "" if unbound[name].value() is None else unbound[name].value() for name in unbound.fields}
    data["runbook_url"] = "javascript:alert(1)"
    form = form_class(data=data, instance=rule)
    assert not form.is_valid() and "runbook_url" in form.errors
    data["runbook_url"] = "http://wiki/cpu"
    assert form_class(data=data, instance=rule).is_valid()


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<script>x</script>", "ftp://h/x",
                                 "http://", "http://exa mple.com", "http://h:99999/"])
def test_channel_and_benchmark_urls_must_be_http_or_https_with_a_host(db, url):
    channel = NotificationChannel(name="c", kind="webhook", url=url)
    with pytest.raises(ValidationError):
        channel.full_clean(exclude=["encrypted_secret"])
    with pytest.raises(ValidationError) as refused:
        BenchmarkRun(label="b", endpoint_url=url).clean_fields()
    assert "endpoint_url" in refused.value.message_dict


def test_a_runbook_url_stored_before_the_check_is_shown_as_text_not_a_link(db, client, make_user):
    from console.alerting.models import Alert

    rule = AlertRule.objects.create(name="r", kind="threshold", series="node.cpu_percent", comparator=">",
                                    threshold=90)
    now = timezone.now()
    alert = Alert.objects.create(rule=rule, rule_name="r", fingerprint="f" * 16, labels={"node": "1"},
                                 annotations={"runbook_url": "javascript:alert(1)"}, severity="warning",
                                 active_since=now, fire_at=now)
    client.force_login(make_user("viewer"))
    page = client.get(f"/alerts/{alert.pk}/").content.decode()
    assert "javascript:alert(1)" in page and 'href="javascript:' not in page


def test_csv_cells_a_spreadsheet_would_run_are_prefixed_with_an_apostrophe():
    assert [csv_safe(v) for v in ("=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "ok", -3.5, 7)] == [
        "'=1+1", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "ok", -3.5, 7]
    text = export.to_csv([{"concurrency": 1, "ttft_p50_ms": -0.5, "label": '=HYPERLINK("http://x","y")',
                           "target": "@cmd", "status": "succeeded"}])
    row = text.splitlines()[1]
    assert "'=HYPERLINK" in row and ",'@cmd," in row and ",-0.5," in row


def test_bootstrap_refuses_a_weak_admin_password_with_a_clear_message(db, monkeypatch):
    monkeypatch.setenv("CONSOLE_ADMIN_PASSWORD", "password")
    with pytest.raises(CommandError, match="CONSOLE_ADMIN_PASSWORD is refused.*too common"):
        call_command("bootstrap", "--no-local-node")
    assert not User.objects.filter(username="admin").exists()
    monkeypatch.setenv("CONSOLE_ADMIN_PASSWORD", "correct-horse-battery")
    call_command("bootstrap", "--no-local-node")
    assert User.objects.get(username="admin").check_password("correct-horse-battery")

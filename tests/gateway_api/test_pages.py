"""Gateway pages: keys (shown once), routes, usage, playground; the job page's gateway snippet."""

import json

import pytest
from django.test import Client

from console.core.models import Event
from jobs.gateway import keys
from jobs.gateway.models import ApiKey, Route, UsageMinute
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser_for(make_user):
    def make(role):
        client = Client()
        client.force_login(make_user(role))
        return client
    return make


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
@pytest.mark.parametrize("name", ["gateway-keys", "gateway-routes", "gateway-usage", "gateway-playground"])
def test_every_gateway_page_renders_for_every_role(browser_for, role, name):
    from django.urls import reverse
    jf.job("qwen-chat")
    response = browser_for(role).get(reverse(name))
    assert response.status_code == 200
    assert b"/jobs/gateway/keys/" in response.content  # the nav link


def test_a_created_key_is_shown_once_and_the_list_shows_only_its_prefix(browser_for):
    operator = browser_for("operator")
    response = operator.post("/jobs/gateway/keys/", {"name": "app", "models": "qwen-chat, canary", "rpm": "60"})
    assert response.status_code == 200
    secret = response.context["created"]["key"]
    assert secret.encode() in response.content and response["Cache-Control"].find("no-store") >= 0
    key = ApiKey.objects.get()
    assert key.digest == keys.digest(secret) and key.models == ["qwen-chat", "canary"] and key.rpm == 60
    again = operator.get("/jobs/gateway/keys/")
    assert secret.encode() not in again.content and key.prefix.encode() in again.content


def test_a_viewer_may_not_create_or_revoke_keys_on_the_page(browser_for, make_user):
    viewer = browser_for("viewer")
    assert viewer.post("/jobs/gateway/keys/", {"name": "app"}).status_code == 403
    owner = make_user("operator", "owner")
    key = ApiKey.objects.create(name="k", owner=owner, prefix="bk-abc", digest="0" * 64)
    assert viewer.post(f"/jobs/gateway/keys/{key.pk}/revoke/").status_code == 403


def test_bad_key_form_input_shows_field_errors(browser_for):
    response = browser_for("operator").post("/jobs/gateway/keys/", {"name": "app", "rpm": "-3"})
    assert response.status_code == 200 and response.context["form"].errors.get("rpm")
    assert not ApiKey.objects.exists()


def test_an_operator_revokes_their_key_on_the_page(browser_for):
    operator = browser_for("operator")
    operator.post("/jobs/gateway/keys/", {"name": "app"})
    key = ApiKey.objects.get()
    assert operator.post(f"/jobs/gateway/keys/{key.pk}/revoke/").status_code == 302
    key.refresh_from_db()
    assert key.revoked


def test_routes_are_created_edited_and_deleted_on_the_pages(browser_for):
    operator = browser_for("operator")
    blue, green = jf.job("blue"), jf.job("green")
    response = operator.post("/jobs/gateway/routes/add/", {"name": "chat", f"weight_{blue.pk}": "9",
                                                          f"weight_{green.pk}": "1", "fallback": str(green.pk)})
    assert response.status_code == 302, response.content
    route = Route.objects.get()
    assert sorted(route.targets.values_list("job__name", "weight")) == [("blue", 9), ("green", 1)]
    assert operator.get(f"/jobs/gateway/routes/{route.pk}/").status_code == 200
    clash = operator.post(f"/jobs/gateway/routes/{route.pk}/", {"name": "blue", f"weight_{blue.pk}": "1"})
    assert clash.status_code == 200 and clash.context["form"].errors.get("name")
    assert operator.post(f"/jobs/gateway/routes/{route.pk}/delete/").status_code == 302
    assert not Route.objects.exists()
    assert browser_for("viewer").get("/jobs/gateway/routes/add/").status_code == 403


def test_the_usage_page_shows_totals_and_a_csv_link(browser_for):
    from django.utils import timezone
    UsageMinute.objects.create(source="gw", minute=timezone.now().replace(second=0, microsecond=0), model="m",
                               requests=7)
    response = browser_for("viewer").get("/jobs/gateway/usage/?range=6h")
    assert response.status_code == 200
    assert response.context["report"]["totals"]["requests"] == 7
    assert b"/api/v1/usage/export/?" in response.content


def test_the_playground_mints_a_one_hour_key_for_one_model_and_audits_it(browser_for):
    operator = browser_for("operator")
    response = operator.post("/jobs/gateway/playground/key/", json.dumps({"model": "qwen-chat"}),
                             content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    key = ApiKey.objects.get()
    assert key.digest == keys.digest(body["key"]) and key.models == ["qwen-chat"]
    assert key.name.startswith("playground") and key.expires_at is not None
    assert Event.objects.filter(verb="create", object_type="apikey").exists()
    assert operator.post("/jobs/gateway/playground/key/", "{}", content_type="application/json").status_code == 400
    viewer = browser_for("viewer")
    assert viewer.post("/jobs/gateway/playground/key/", json.dumps({"model": "x"}),
                       content_type="application/json").status_code == 403


def test_the_playground_lists_routes_served_names_and_aliases(browser_for):
    job = jf.job("qwen-chat", options={"served_name": "qwen"})
    Route.objects.create(name="canary")
    from models_registry.models import Alias
    Alias.objects.create(model=job.model_version.model, name="prod", version=job.model_version)
    names = [n["name"] for n in browser_for("operator").get("/jobs/gateway/playground/").context["names"]]
    assert names == ["canary", "qwen", "Qwen2.5-7B-Instruct@prod"]


def test_the_job_page_shows_the_gateway_model_name_url_and_snippets(browser_for, settings):
    job = jf.job("qwen-chat", options={"served_name": "qwen"})
    response = browser_for("viewer").get(f"/jobs/{job.pk}/")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="gateway-snippet"' in text
    assert f"{settings.CONSOLE_GATEWAY_URL}/v1/chat/completions" in text
    assert "OpenAI(base_url=" in text and "model=&#x27;qwen&#x27;" in text

"""Day-2 actions on the version page (issue 17): edit, delete with a confirmation and a reason, and
evaluations added, changed and removed in the page through the API's validation."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from console.core.models import Event
from models_registry.models import ModelVersion
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db


def browser(make_user, role: str) -> Client:
    client = Client()
    client.force_login(make_user(role, f"{role}-at-the-page"))
    return client


def management(prefix="evaluations", total=3, initial=0) -> dict:
    return {f"{prefix}-TOTAL_FORMS": str(total), f"{prefix}-INITIAL_FORMS": str(initial),
            f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "200"}


def test_evaluations_are_added_changed_and_removed_in_the_page(make_user):
    version = jf.version()
    client = browser(make_user, "admin")
    detail = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert "PATCH" not in detail and f"/models/versions/{version.pk}/evaluations/" in detail
    response = client.post(f"/models/versions/{version.pk}/evaluations/", {
        **management(), "evaluations-0-benchmark": "CEval", "evaluations-0-score": "88.5",
        "evaluations-0-date": "2026-11-30", "evaluations-1-benchmark": "MMLU", "evaluations-1-score": "79",
    })
    assert response.status_code == 302
    assert sorted(version.evaluations.values_list("benchmark", "score")) == [("CEval", 88.5), ("MMLU", 79.0)]
    page = client.get(f"/models/versions/{version.pk}/evaluations/").content.decode()
    assert 'value="CEval"' in page and 'value="88.5"' in page
    client.post(f"/models/versions/{version.pk}/evaluations/", {
        **management(total=3, initial=2), "evaluations-0-benchmark": "CEval", "evaluations-0-score": "89",
        "evaluations-1-benchmark": "MMLU", "evaluations-1-score": "79", "evaluations-1-DELETE": "on",
    })
    assert list(version.evaluations.values_list("benchmark", "score")) == [("CEval", 89.0)]
    assert Event.objects.filter(verb="update", object_type="modelversion").count() == 2


def test_bad_evaluations_show_field_errors_and_keep_the_stored_list(make_user):
    version = jf.version()
    version.evaluations.create(benchmark="CEval", score=80)
    client = browser(make_user, "admin")
    missing = client.post(f"/models/versions/{version.pk}/evaluations/", {
        **management(), "evaluations-0-benchmark": "GSM8K", "evaluations-1-score": "12"})
    assert missing.status_code == 200
    forms = missing.context["formset"].forms
    assert forms[0].errors["score"] and forms[1].errors["benchmark"]
    twice = client.post(f"/models/versions/{version.pk}/evaluations/", {
        **management(), "evaluations-0-benchmark": "MMLU", "evaluations-0-score": "1",
        "evaluations-1-benchmark": "mmlu", "evaluations-1-score": "2"})
    assert twice.status_code == 200 and "appears twice" in twice.content.decode()
    assert list(version.evaluations.values_list("benchmark", "score")) == [("CEval", 80.0)]


def test_an_admin_edits_a_version_and_a_name_clash_is_a_field_error(make_user):
    version = jf.version(version="bf16")
    jf.version(version="w8a8", quantization="w8a8")
    client = browser(make_user, "admin")
    clash = client.post(f"/models/versions/{version.pk}/edit/", {"version": "w8a8", "quantization": "bf16"})
    assert clash.status_code == 200 and clash.context["form"].errors["version"]
    response = client.post(f"/models/versions/{version.pk}/edit/",
                           {"version": "bf16-r2", "quantization": "bf16", "notes": "re-exported"})
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.version == "bf16-r2" and version.notes == "re-exported"
    assert "version" in Event.objects.get(verb="update", object_type="modelversion").detail["fields"]


def test_a_version_in_use_is_not_deleted_and_the_409_detail_is_the_message(make_user):
    version = jf.version()
    jf.job(name="chat", model_version=version)
    client = browser(make_user, "admin")
    response = client.post(f"/models/versions/{version.pk}/delete/", {"reason": "old"})
    assert response.status_code == 302 and response.url == f"/models/versions/{version.pk}/"
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"model version {version} is used by job(s) chat: delete them or point them at another version first"]
    assert ModelVersion.objects.filter(pk=version.pk).exists()


def test_an_admin_deletes_a_version_after_confirming_with_a_reason(make_user):
    version = jf.version()
    name = str(version)
    client = browser(make_user, "admin")
    assert client.get(f"/models/versions/{version.pk}/delete/").status_code == 200
    response = client.post(f"/models/versions/{version.pk}/delete/", {"reason": "superseded"})
    assert response.status_code == 302 and response.url == "/models/"
    assert not ModelVersion.objects.filter(pk=version.pk).exists()
    assert Event.objects.get(verb="delete", object_type="modelversion").detail == {"name": name,
                                                                                  "reason": "superseded"}


def test_operators_and_viewers_may_not_edit_delete_or_score_versions(make_user):
    version = jf.version()
    for role in ("viewer", "operator"):
        client = browser(make_user, role)
        assert client.get(f"/models/versions/{version.pk}/edit/").status_code == 403
        assert client.post(f"/models/versions/{version.pk}/delete/").status_code == 403
        assert client.post(f"/models/versions/{version.pk}/evaluations/", management()).status_code == 403
    assert ModelVersion.objects.filter(pk=version.pk).exists()


def test_deprecating_asks_first_keeps_the_reason_and_reinstating_brings_it_back(make_user):
    version = jf.version()
    client = browser(make_user, "admin")
    assert f"/models/versions/{version.pk}/deprecate/" in client.get(f"/models/versions/{version.pk}/").content.decode()
    assert client.get(f"/models/versions/{version.pk}/deprecate/").status_code == 200
    version.refresh_from_db()
    assert version.status == "verified"
    client.post(f"/models/versions/{version.pk}/deprecate/", {"reason": "accuracy regression on CEval"})
    version.refresh_from_db()
    assert version.status == "deprecated"
    assert version.status_history.first().reason == "accuracy regression on CEval"
    assert 'id="reinstate-version"' in client.get(f"/models/versions/{version.pk}/").content.decode()
    client.post(f"/models/versions/{version.pk}/reinstate/")
    version.refresh_from_db()
    assert version.status == "registered"
    again = client.post(f"/models/versions/{version.pk}/reinstate/")
    assert [str(m) for m in get_messages(again.wsgi_request)][-1] == f"{version} is not deprecated"

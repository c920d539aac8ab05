"""Routes: nested targets replaced as a set, validated, audited; operators write, viewers read."""

import pytest

from console.core.models import Event
from jobs.gateway.models import Route, RouteTarget
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs_():
    return jf.job("blue"), jf.job("green"), jf.job("spare", options={"served_name": "qwen-spare"})


def test_an_operator_creates_a_route_with_weighted_targets_and_a_fallback(operator_api, jobs_):
    blue, green, spare = jobs_
    response = operator_api.post("/api/v1/routes/", {
        "name": "chat", "targets": [{"job": blue.pk, "weight": 90}, {"job": green.pk, "weight": 10}],
        "fallback": spare.pk}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "chat" and body["fallback"] == spare.pk
    assert [(t["job"], t["weight"]) for t in body["targets"]] == [(blue.pk, 90), (green.pk, 10)]
    assert Event.objects.filter(verb="create", object_type="route").exists()


def test_updating_a_route_replaces_its_targets(operator_api, jobs_):
    blue, green, _ = jobs_
    route_id = operator_api.post("/api/v1/routes/", {"name": "chat", "targets": [{"job": blue.pk, "weight": 1}]},
                                 format="json").json()["id"]
    response = operator_api.patch(f"/api/v1/routes/{route_id}/", {"targets": [{"job": green.pk, "weight": 5}]},
                                  format="json")
    assert response.status_code == 200, response.content
    assert list(RouteTarget.objects.values_list("job_id", "weight")) == [(green.pk, 5)]
    assert Event.objects.filter(verb="update", object_type="route").exists()
    assert operator_api.delete(f"/api/v1/routes/{route_id}/").status_code == 204
    assert not Route.objects.exists() and Event.objects.filter(verb="delete", object_type="route").exists()


@pytest.mark.parametrize("make_body, field", [
    (lambda b, g, s: {"name": "chat", "targets": [{"job": b.pk, "weight": 1}, {"job": b.pk, "weight": 2}]},
     "targets"),
    (lambda b, g, s: {"name": "chat", "targets": [{"job": b.pk, "weight": 0}]}, "targets"),
    (lambda b, g, s: {"name": "chat", "targets": [{"job": b.pk, "weight": 1_000_001}]}, "targets"),
    (lambda b, g, s: {"name": "chat", "targets": [{"job": b.pk, "weight": -1}]}, "targets"),
    (lambda b, g, s: {"name": "chat", "targets": []}, "targets"),
    (lambda b, g, s: {"name": "chat", "targets": [{"job": 99999, "weight": 1}]}, "targets"),
    (lambda b, g, s: {"name": "green", "targets": [{"job": b.pk, "weight": 1}]}, "name"),
    (lambda b, g, s: {"name": "qwen-spare", "targets": [{"job": b.pk, "weight": 1}]}, "name"),
])
def test_bad_routes_are_a_400_naming_the_field(operator_api, jobs_, make_body, field):
    response = operator_api.post("/api/v1/routes/", make_body(*jobs_), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Route.objects.exists()


def test_viewers_read_routes_but_may_not_write_them(viewer_api, jobs_):
    assert viewer_api.get("/api/v1/routes/").status_code == 200
    response = viewer_api.post("/api/v1/routes/", {"name": "chat", "targets": [{"job": jobs_[0].pk}]},
                               format="json")
    assert response.status_code == 403

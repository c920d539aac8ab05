"""While PostgreSQL, Redis or the broker is down, pages and the API answer 503 naming the part, never 500
(console.core.outage); any other error stays a 500. tests/integration/test_production_topology.py restarts
the real services."""

import pytest
import redis
from django.db import OperationalError
from django.test import Client
from kombu.exceptions import OperationalError as BrokerError

from jobs.api.views import JobViewSet

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(make_user):
    client = Client(raise_request_exception=False)
    client.force_login(make_user("viewer"))
    return client


def failing(exc):
    def fail(*args, **kwargs):
        raise exc
    return fail


@pytest.mark.parametrize(("exc", "part"), [
    (OperationalError("server closed the connection unexpectedly"), "database"),
    (redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."), "redis"),
    (BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused."), "broker"),
])
def test_the_api_answers_503_naming_the_part_that_is_down(viewer_api, monkeypatch, exc, part):
    monkeypatch.setattr(JobViewSet, "list", failing(exc))
    viewer_api.raise_request_exception = False
    response = viewer_api.get("/api/v1/jobs/")
    assert response.status_code == 503
    assert response.json()["part"] == part and part in response.json()["detail"]
    assert response["Retry-After"] == "5"


def test_a_page_answers_503_naming_the_database_when_a_middleware_cannot_reach_it(browser, monkeypatch):
    """The session and the user are read by middleware, before any view: Django's 500 handler sees it."""
    monkeypatch.setattr("console.core.middleware.has_role", failing(OperationalError("the database is down")))
    response = browser.get("/jobs/")
    assert response.status_code == 503
    assert b'data-part="database"' in response.content
    assert response["Content-Type"].startswith("text/html")


def test_a_page_answers_503_when_its_view_cannot_reach_the_database(browser, monkeypatch):
    from console import urls

    monkeypatch.setattr(urls.urlpatterns[0], "callback", failing(OperationalError("gone")))  # the overview
    response = browser.get("/")
    assert response.status_code == 503 and b'data-part="database"' in response.content


def test_an_error_that_is_not_an_outage_stays_a_500(viewer_api, monkeypatch):
    monkeypatch.setattr(JobViewSet, "list", failing(ValueError("a bug")))
    viewer_api.raise_request_exception = False
    assert viewer_api.get("/api/v1/jobs/").status_code == 500

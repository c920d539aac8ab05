"""/healthz and /readyz (shared/API.md)."""

import pytest


def test_healthz_answers_200_while_the_process_lives(client):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_answers_200_when_database_and_broker_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_readyz_answers_503_naming_the_broker_when_it_does_not_answer(client, settings):
    from console.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/readyz")
    finally:
        app.conf.broker_url = old
    assert response.status_code == 503
    assert any(f.startswith("broker:") for f in response.json()["failures"])
    assert response.json()["parts"] == ["broker"]

"""A service's Conflict on a page: the same detail the API gives in its 409, shown as an error."""

from datetime import timedelta

import pytest
from django import forms
from django.contrib.messages import get_messages
from django.test import RequestFactory
from django.utils import timezone

from console.alerting.models import Silence
from console.core.errors import Conflict
from console.core.pages import conflict_message

pytestmark = pytest.mark.django_db


class NameForm(forms.Form):
    name = forms.CharField()


def raise_conflict():
    raise Conflict("the job is stopped: start it instead")


def test_a_conflict_becomes_the_forms_non_field_error_and_the_block_stops_there():
    form = NameForm({"name": "x"})
    form.is_valid()
    reached = []
    with conflict_message(RequestFactory().post("/"), form=form) as outcome:
        raise_conflict()
        reached.append(True)
    assert outcome.refused and outcome.detail == "the job is stopped: start it instead"
    assert form.non_field_errors() == ["the job is stopped: start it instead"] and not reached


def test_anything_but_a_conflict_is_not_swallowed():
    with pytest.raises(ValueError), conflict_message(RequestFactory().post("/")):
        raise ValueError("a bug")


def test_expiring_an_ended_silence_is_a_409_with_detail_in_the_api_and_the_same_error_on_the_page(
        operator_api, client, make_user):
    now = timezone.now()
    silence = Silence.objects.create(matchers=[], starts_at=now - timedelta(hours=2),
                                     ends_at=now - timedelta(hours=1), comment="done")
    response = operator_api.post(f"/api/v1/silences/{silence.pk}/expire/")
    assert response.status_code == 409 and response.json() == {"detail": "The silence has already ended."}
    client.force_login(make_user("operator", "operator-at-the-page"))
    page = client.post(f"/alerts/silences/{silence.pk}/expire/")
    assert page.status_code == 302
    assert [str(m) for m in get_messages(page.wsgi_request)] == ["The silence has already ended."]

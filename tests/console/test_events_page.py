"""The events page: filters by verb, object type, object, actor and time range; each event links to its
object's page; and the favicon every page names (no 404 for /favicon.ico)."""

from datetime import timedelta

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from console.core import audit
from console.core.models import Event
from jobs.models import Instance
from tests import factories
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client, make_user):
    client.force_login(make_user("admin"))
    return client


def rows(page: str) -> int:
    return page.count('<tr class="event"')


def test_the_events_page_filters_by_verb_object_type_actor_and_time_range(admin):
    node = factories.node(name="gpu-a1")
    job = jf.job(name="qwen-chat", engine="simulator")
    audit.record("probe", node, actor="alice")
    audit.record("start", job)
    old = audit.record("stop", job)
    Event.objects.filter(pk=old.pk).update(time=timezone.now() - timedelta(days=3))
    url = reverse("event-list")
    assert rows(admin.get(url).content.decode()) == 3
    assert rows(admin.get(url, {"verb": "probe"}).content.decode()) == 1
    assert rows(admin.get(url, {"object_type": "job"}).content.decode()) == 2
    assert rows(admin.get(url, {"actor": "alice"}).content.decode()) == 1
    assert rows(admin.get(url, {"actor": "system"}).content.decode()) == 2
    assert rows(admin.get(url, {"object_type": "job", "range": "24h"}).content.decode()) == 1
    assert rows(admin.get(url, {"range": "7d"}).content.decode()) == 3
    # An unknown value filters nothing away rather than failing.
    assert admin.get(url, {"range": "forever", "verb": "x" * 500}).status_code == 200
    page = admin.get(url, {"verb": "probe"}).content.decode()
    assert '<option value="probe" selected>' in page and '<option value="job"' in page


def test_each_event_links_to_its_objects_page_and_an_instance_to_its_job(admin):
    node = factories.node(name="gpu-a1")
    job = jf.job(name="qwen-chat", engine="simulator")
    instance = Instance.objects.create(job=job, replica=0, node=node, port=40001)
    audit.record("probe", node)
    audit.record("schedule", instance)
    audit.record("delete", None, object_type="job", object_id=999)
    page = admin.get(reverse("event-list")).content.decode()
    assert f'<a href="{reverse("node-detail", args=[node.pk])}">gpu-a1</a>' in page
    assert f'<a href="{reverse("job-detail", args=[job.pk])}">qwen-chat/r0</a>' in page
    assert "/jobs/999/" not in page  # a deleted object has no page


def test_pages_name_the_favicon_and_favicon_ico_leads_to_it(admin):
    page = admin.get(reverse("event-list")).content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    answer = admin.get("/favicon.ico")
    assert answer.status_code == 301 and answer["Location"] == "/static/favicon.svg"
    icon = finders.find("favicon.svg")  # served by the ASGI application's static handler
    assert icon and "<svg" in open(icon, encoding="utf-8").read()

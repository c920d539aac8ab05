"""Pages follow state through the stream, in one time zone per user.

State changes tell the pages that show them (``{"state": {"changed": {kind: t}}}`` on the object's
topic and on ``cluster``), only when something shown changed; a page re-reading its live regions costs
no series query. Every timestamp is a ``<time>`` in the user's zone (the browser's, or the one chosen
in the user menu), titled with the zone; the API stays in UTC.
"""

import datetime as dt
import re
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from console.core.models import Event, StreamEntry
from console.core.timefmt import when
from console.models import UserPreference
from console.streams import TopicError, check_topic
from jobs import services as job_services
from jobs.choices import InstanceState
from jobs.models import BenchmarkRun, Instance, JobSample
from nodes import services as node_services
from nodes.choices import NodeStatus
from tests import factories
from tests.jobs import factories as jf
from tests.live import live_config

pytestmark = pytest.mark.django_db
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
MOMENT = dt.datetime(2026, 12, 5, 12, 18, 3, tzinfo=dt.UTC)


def notices(topic: str) -> list[dict]:
    return [e.payload["state"]["changed"] for e in StreamEntry.objects.filter(topic=topic).order_by("pk")
            if "changed" in e.payload.get("state", {})]


@pytest.fixture
def viewer_client(client, make_user):
    client.force_login(make_user("viewer"))
    return client


@pytest.fixture
def operator_client(client, make_user):
    client.force_login(make_user("operator"))
    return client


def running_instance():
    job = jf.job(engine="simulator", accelerators_per_replica=0, desired_state="running")
    node = factories.node()
    instance = Instance.objects.create(job=job, replica=0, node=node, port=41000, pid=1234, state=InstanceState.RUNNING,
                                       run=1)
    return job, instance


# -- what the server publishes


def test_an_instance_state_change_tells_its_job_page_and_the_cluster():
    job, instance = running_instance()
    assert job_services.transition_instance(instance, InstanceState.RESTARTING, "killed by SIGKILL", pid=None)
    assert [list(n) for n in notices(f"job:{job.pk}")] == [["instance"]]
    assert [list(n) for n in notices("cluster")] == [["instance"]]


def test_a_same_state_write_tells_the_pages_only_when_what_they_show_changed():
    job, instance = running_instance()
    job_services.transition_instance(instance, InstanceState.RUNNING, "ready")
    assert len(notices(f"job:{job.pk}")) == 1  # the reason is new
    job_services.transition_instance(instance, InstanceState.RUNNING, "ready")
    job_services.transition_instance(instance, InstanceState.RUNNING, "ready")
    assert len(notices(f"job:{job.pk}")) == 1, "a health check that changes nothing shown published a notice"


def test_a_job_state_change_tells_its_page_and_an_unchanged_one_does_not():
    job, instance = running_instance()
    job_services.refresh_job_state(job)
    assert job.state == "running"
    assert [list(n) for n in notices(f"job:{job.pk}")] == [["job"]]
    job_services.refresh_job_state(job)
    assert len(notices(f"job:{job.pk}")) == 1


def test_a_node_found_again_tells_its_page_and_the_cluster():
    node = factories.node(status=NodeStatus.UNREACHABLE, status_detail="[Errno 111] Connection refused")
    assert node_services.transition_node(node, NodeStatus.ONLINE, "")
    assert [list(n) for n in notices(f"node:{node.pk}")] == [["node"]]
    assert [list(n) for n in notices("cluster")] == [["node"]]


def test_a_probe_that_only_brings_new_facts_tells_the_node_page_but_not_the_lists():
    node = factories.node(status=NodeStatus.ONLINE)
    node_services.transition_node(node, NodeStatus.ONLINE, "", facts={"load": [0.5, 0.4, 0.3]})
    assert len(notices(f"node:{node.pk}")) == 1
    assert notices("cluster") == []
    node_services.transition_node(node, NodeStatus.ONLINE, "", facts={"load": [0.5, 0.4, 0.3]})
    assert len(notices(f"node:{node.pk}")) == 1, "a probe that changed nothing shown published a notice"
    node_services.transition_node(node, NodeStatus.ONLINE, "unhealthy accelerators: nvidia0 warning")
    assert len(notices("cluster")) == 1


def test_the_benchmark_topic_names_an_existing_run(make_user):
    viewer = make_user("viewer")
    job, _instance = running_instance()
    run = BenchmarkRun.objects.create(job=job, job_name=job.name, endpoints=["http://127.0.0.1:1/v1"])
    check_topic(viewer, f"benchmark:{run.pk}")
    with pytest.raises(TopicError):
        check_topic(viewer, f"benchmark:{run.pk + 1}")


# -- pages




def test_a_re_read_of_the_job_page_for_its_regions_reads_no_chart_points(viewer_client):
    job, _instance = running_instance()
    now = int(timezone.now().timestamp() * 1000)
    JobSample.objects.bulk_create([JobSample(job=job, ts=now - i * 1000, output_tokens_per_s=10.0) for i in range(5)])
    url = reverse("job-detail", args=[job.pk])
    full = live_config(viewer_client.get(url).content.decode())
    assert any(t["x"] for c in full["charts"] for t in c["traces"])
    regions = viewer_client.get(url, headers={"X-Live-Regions": "1"}).content.decode()
    assert not any(t["x"] for c in live_config(regions)["charts"] for t in c["traces"])
    for region in ("job-head", "job-instances", "job-timeline"):
        assert re.search(rf'id="{region}" data-live-region data-live-on="job instance"', regions), region


def test_a_list_page_follows_the_cluster_topic_without_loading_plotly(viewer_client):
    jf.job()
    page = viewer_client.get(reverse("job-list")).content.decode()
    assert live_config(page)["topics"] == ["cluster"]
    assert "plotly" not in page
    assert 'id="job-table" data-live-region' in page and "live_regions.js" in page


def test_the_node_page_names_accelerators_by_kind_and_index_for_the_legends(viewer_client):
    node = factories.node()
    gpus = factories.accelerators(node, count=2)
    npus = factories.accelerators(factories.node(), count=1, vendor="huawei")
    config = live_config(viewer_client.get(reverse("node-detail", args=[node.pk]), headers={"X-Live-Regions": "1"})
                         .content.decode())
    for chart in config["charts"]:
        if chart["dynamic"]:
            assert chart["names"] == {str(gpus[0].pk): "GPU 0", str(gpus[1].pk): "GPU 1"}
            assert [t["name"] for t in chart["traces"]] == ["GPU 0", "GPU 1"]
    other = live_config(viewer_client.get(reverse("node-detail", args=[npus[0].node_id])).content.decode())
    assert other["charts"][1]["names"] == {str(npus[0].pk): "NPU 0"}


def test_a_rolling_restart_says_what_it_set_in_motion_and_the_page_shows_its_progress(operator_client):
    job = jf.job(engine="simulator", accelerators_per_replica=0, desired_state="running", replicas=2)
    node = factories.node()
    for replica in (0, 1):
        Instance.objects.create(job=job, replica=replica, node=node, port=41000 + replica, pid=100 + replica,
                                state=InstanceState.RUNNING, run=1)
    response = operator_client.post(reverse("job-action", args=[job.pk, "restart"]), follow=True)
    page = response.content.decode()
    assert "Rolling restart of qwen-chat to generation 2" in page
    job.refresh_from_db()
    progress = job_services.rolling_restart_progress(job, list(job.instances.all()))
    assert progress == {"generation": 2, "done": 0, "total": 2}
    assert 'id="rolling-restart"' in page
    Instance.objects.filter(job=job, replica=0).update(generation=2)
    assert job_services.rolling_restart_progress(job, list(job.instances.all()))["done"] == 1
    Instance.objects.filter(job=job).update(generation=2)
    assert job_services.rolling_restart_progress(job, list(job.instances.all())) is None


# -- one time zone


def test_a_timestamp_is_a_time_element_in_the_active_zone_titled_with_the_zone():
    with timezone.override(SHANGHAI):
        html = str(when(MOMENT))
    assert html == ('<time datetime="2026-12-05T12:18:03Z" title="2026-12-05 20:18:03 CST (Asia/Shanghai)">'
                    "2026-12-05 20:18:03</time>")
    assert str(when(None)) == ""


def test_the_events_page_shows_every_time_in_the_browsers_zone(viewer_client):
    Event.objects.create(verb="create", object_type="job", object_id="1", actor="admin", time=MOMENT)
    viewer_client.cookies["boom_tz"] = "Asia%2FShanghai"
    page = viewer_client.get(reverse("event-list")).content.decode()
    assert 'data-tz="Asia/Shanghai" data-tz-source="browser"' in page
    assert ('<time datetime="2026-12-05T12:18:03Z" title="2026-12-05 20:18:03 CST (Asia/Shanghai)">'
            "2026-12-05 20:18:03</time>") in page


def test_without_a_browser_zone_or_a_choice_the_page_is_in_the_servers_zone(viewer_client):
    Event.objects.create(verb="create", object_type="job", object_id="1", actor="admin", time=MOMENT)
    page = viewer_client.get(reverse("event-list")).content.decode()
    assert 'data-tz="UTC" data-tz-source="server"' in page
    assert 'title="2026-12-05 12:18:03 UTC (UTC)">2026-12-05 12:18:03</time>' in page


def test_the_zone_chosen_in_the_user_menu_wins_over_the_browsers_and_comes_back_at_the_next_login(client, make_user):
    user = make_user("viewer", "ming")
    client.force_login(user)
    client.cookies["boom_tz"] = "Europe%2FBerlin"
    response = client.post(reverse("set-time-zone"), {"time_zone": "Asia/Shanghai", "next": reverse("event-list")})
    assert response.status_code == 302 and response.url == reverse("event-list")
    assert UserPreference.objects.get(user=user).time_zone == "Asia/Shanghai"
    assert 'data-tz="Asia/Shanghai" data-tz-source="user"' in client.get(reverse("event-list")).content.decode()
    client.logout()
    client.cookies["boom_tz"] = "Europe%2FBerlin"  # the test client's logout forgot every cookie
    client.post(reverse("login"), {"username": "ming", "password": "pw-ming"})
    assert 'data-tz="Asia/Shanghai" data-tz-source="user"' in client.get(reverse("event-list")).content.decode()
    # Back to the browser's.
    client.post(reverse("set-time-zone"), {"time_zone": ""})
    assert 'data-tz="Europe/Berlin" data-tz-source="browser"' in client.get(reverse("event-list")).content.decode()


def test_an_unknown_zone_is_refused_with_a_400_that_says_why(viewer_client):
    response = viewer_client.post(reverse("set-time-zone"), {"time_zone": "Mars/Olympus"})
    assert response.status_code == 400
    assert "Mars/Olympus" in response.content.decode() and "Asia/Shanghai" in response.content.decode()
    assert not UserPreference.objects.exists()


def test_the_user_menu_does_not_redirect_off_the_console(viewer_client):
    response = viewer_client.post(reverse("set-time-zone"), {"time_zone": "UTC", "next": "https://evil.example/"})
    assert response.status_code == 302 and response.url == "/"


def test_the_api_answers_in_utc_whatever_the_users_zone(client, make_user):
    client.force_login(make_user("viewer"))
    client.cookies["boom_tz"] = "Asia%2FShanghai"
    Event.objects.create(verb="create", object_type="job", object_id="1", actor="admin", time=MOMENT)
    body = client.get("/api/v1/events/").json()
    times = [row["time"] for row in body["results"]]
    assert times and all(t.endswith("Z") or t.endswith("+00:00") for t in times), times


def test_the_gateway_usage_charts_draw_their_times_in_the_users_zone_and_name_it():
    from jobs.gateway.views import _figure

    with timezone.override(SHANGHAI):
        figure = _figure([{"name": "key-1", "points": [{"t": "2026-12-05T12:18:03Z", "requests": 3}]}], "requests", "R")
    assert figure["data"][0]["x"] == ["2026-12-05 20:18:03"]
    assert figure["layout"]["xaxis"]["title"]["text"] == "Asia/Shanghai (UTC+08:00)"

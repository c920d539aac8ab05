"""Day-2 actions on the job pages (issue 17): scale, edit, stop and delete with a confirmation and a reason
recorded in the audit log, the previous run's log; viewers get 403, a refusal is a message, not a 500."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from console.core.models import Event
from jobs.models import Instance, Job
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db


def browser(make_user, role: str) -> Client:
    client = Client()
    client.force_login(make_user(role, f"{role}-at-the-page"))
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_an_operator_scales_a_job_from_its_page_and_the_event_records_both_counts(make_user):
    job = jf.job(engine="simulator", replicas=1, accelerators_per_replica=0)
    client = browser(make_user, "operator")
    assert 'id="scale-form"' in client.get(f"/jobs/{job.pk}/").content.decode()
    response = client.post(f"/jobs/{job.pk}/scale/", {"replicas": 3, "reason": "evening peak"})
    assert response.status_code == 302 and response.url == f"/jobs/{job.pk}/"
    job.refresh_from_db()
    assert job.replicas == 3
    event = Event.objects.get(verb="scale", object_type="job", object_id=str(job.pk))
    assert event.actor == "operator-at-the-page"
    assert event.detail == {"from": 1, "to": 3, "reason": "evening peak"}
    assert messages_of(response) == [f"Job {job.name} scaled from 1 to 3 replicas."]


def test_scaling_beyond_the_apis_bound_shows_the_field_error_and_changes_nothing(make_user):
    job = jf.job(replicas=2)
    response = browser(make_user, "operator").post(f"/jobs/{job.pk}/scale/", {"replicas": 65})
    assert response.status_code == 200
    assert response.context["form"].errors["replicas"]
    job.refresh_from_db()
    assert job.replicas == 2 and not Event.objects.filter(verb="scale").exists()


def test_a_viewer_may_not_scale_stop_edit_or_delete_and_sees_no_such_buttons(make_user):
    job = jf.job(replicas=2, desired_state="running")
    client = browser(make_user, "viewer")
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="scale-form"' not in page and 'id="delete-job"' not in page and 'id="stop-job"' not in page
    assert client.post(f"/jobs/{job.pk}/scale/", {"replicas": 0}).status_code == 403
    assert client.get(f"/jobs/{job.pk}/stop/").status_code == 403
    assert client.post(f"/jobs/{job.pk}/stop/").status_code == 403
    assert client.get(f"/jobs/{job.pk}/edit/").status_code == 403
    assert client.post(f"/jobs/{job.pk}/delete/").status_code == 403
    job.refresh_from_db()
    assert job.replicas == 2 and job.desired_state == "running"


def test_an_operator_may_not_edit_or_delete_a_job(make_user):
    job = jf.job()
    client = browser(make_user, "operator")
    assert client.get(f"/jobs/{job.pk}/edit/").status_code == 403
    assert client.post(f"/jobs/{job.pk}/delete/").status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()


def test_stop_asks_first_and_the_reason_lands_in_the_audit_event(make_user):
    job = jf.job(desired_state="running")
    client = browser(make_user, "operator")
    detail = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/jobs/{job.pk}/stop/"' in detail  # a link to the confirmation, not a one-click form
    confirm = client.get(f"/jobs/{job.pk}/stop/")
    assert confirm.status_code == 200
    text = confirm.content.decode()
    assert 'id="confirm-form"' in text and 'name="reason"' in text
    job.refresh_from_db()
    assert job.desired_state == "running"  # asking changed nothing
    response = client.post(f"/jobs/{job.pk}/stop/", {"reason": "GPU 3 replaced tonight"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.desired_state == "stopped"
    event = Event.objects.get(verb="stop", object_id=str(job.pk))
    assert event.detail == {"reason": "GPU 3 replaced tonight"} and event.actor == "operator-at-the-page"


def test_a_reason_with_control_characters_is_a_field_error_and_nothing_stops(make_user):
    job = jf.job(desired_state="running")
    response = browser(make_user, "operator").post(f"/jobs/{job.pk}/stop/", {"reason": "bad\x1b[31m"})
    assert response.status_code == 200 and response.context["form"].errors["reason"]
    job.refresh_from_db()
    assert job.desired_state == "running"


def test_deleting_a_job_with_live_instances_shows_the_apis_409_detail_as_a_message(make_user):
    job = jf.job()
    Instance.objects.create(job=job, replica=0, state="running")
    client = browser(make_user, "admin")
    response = client.post(f"/jobs/{job.pk}/delete/", {"reason": "cleanup"})
    assert response.status_code == 302 and response.url == f"/jobs/{job.pk}/"
    assert messages_of(response) == ["the job still has live instances: stop it first"]
    assert Job.objects.filter(pk=job.pk).exists()
    assert not Event.objects.filter(verb="delete", object_type="job").exists()
    page = client.get(response.url)
    assert "the job still has live instances: stop it first" in page.content.decode()


def test_an_admin_deletes_a_stopped_job_after_confirming_with_a_reason(make_user):
    job = jf.job(name="old-chat")
    client = browser(make_user, "admin")
    confirm = client.get(f"/jobs/{job.pk}/delete/")
    assert confirm.status_code == 200 and "Delete old-chat?" in confirm.content.decode()
    response = client.post(f"/jobs/{job.pk}/delete/", {"reason": "replaced by new-chat"})
    assert response.status_code == 302 and response.url == "/jobs/"
    assert not Job.objects.filter(pk=job.pk).exists()
    event = Event.objects.get(verb="delete", object_type="job", object_id=str(job.pk))
    assert event.detail == {"name": "old-chat", "reason": "replaced by new-chat"}
    assert event.actor == "admin-at-the-page"


def test_the_apis_delete_and_the_page_share_one_path(admin_api):
    job = jf.job(name="api-deleted")
    assert admin_api.delete(f"/api/v1/jobs/{job.pk}/").status_code == 204
    assert Event.objects.get(verb="delete", object_type="job").detail == {"name": "api-deleted"}


def test_an_admin_edits_a_job_with_the_apis_validation(make_user):
    job = jf.job(name="qwen-chat", engine="simulator", accelerators_per_replica=0, replicas=1)
    client = browser(make_user, "admin")
    form = client.get(f"/jobs/{job.pk}/edit/")
    assert form.status_code == 200
    assert 'value="qwen-chat"' in form.content.decode() and 'name="start"' not in form.content.decode()
    fields = {"name": "qwen-chat", "model_version": job.model_version_id, "engine": "simulator", "replicas": 2,
              "accelerators_per_replica": 0, "nodes_per_replica": 1, "placement": "binpack",
              "node_selector": "zone=a", "extra_args": "", "env": "", "max_model_len": "", "options": "{}"}
    bad = client.post(f"/jobs/{job.pk}/edit/", {**fields, "name": "Not A Valid Name!"})
    assert bad.status_code == 200 and bad.context["form"].errors["name"]
    response = client.post(f"/jobs/{job.pk}/edit/", fields)
    assert response.status_code == 302, response.context["form"].errors if response.context else ""
    job.refresh_from_db()
    assert job.replicas == 2 and job.node_selector == {"zone": "a"} and job.desired_state == "stopped"
    event = Event.objects.get(verb="update", object_type="job")
    assert "replicas" in event.detail["fields"] and "node_selector" in event.detail["fields"]


def test_the_previous_runs_log_is_shown_from_the_copy_the_console_kept(make_user):
    job = jf.job()
    instance = Instance.objects.create(job=job, replica=0, state="restarting",
                                       previous_log="line one\nTraceback: CUDA out of memory\n",
                                       last_exit_reason="exited with status 1")
    client = browser(make_user, "viewer")
    assert f"/jobs/instances/{instance.pk}/log/?previous=1" in client.get(f"/jobs/{job.pk}/").content.decode()
    page = client.get(f"/jobs/instances/{instance.pk}/log/?previous=1")
    assert page.status_code == 200
    text = page.content.decode()
    assert "CUDA out of memory" in text and "exited with status 1" in text
    current = client.get(f"/jobs/instances/{instance.pk}/log/").content.decode()
    assert "not placed on a node" in current  # the current run is read on the node, which it has none of


def test_secret_entries_are_replaced_in_the_edit_page_and_never_shown_again(make_user):
    job = jf.job(name="qwen-chat", engine="simulator", accelerators_per_replica=0)
    client = browser(make_user, "admin")
    fields = {"name": "qwen-chat", "model_version": job.model_version_id, "engine": "simulator", "replicas": 1,
              "accelerators_per_replica": 0, "nodes_per_replica": 1, "placement": "binpack", "node_selector": "",
              "extra_args": "", "env": "", "max_model_len": "", "options": "{}"}
    secret = "hf_s3cr3t_value_123"
    bad = client.post(f"/jobs/{job.pk}/edit/", {**fields, "name": "Bad Name!", "secret_env": f"HF_TOKEN={secret}"})
    assert bad.status_code == 200 and secret not in bad.content.decode()
    response = client.post(f"/jobs/{job.pk}/edit/", {**fields, "secret_env": f"HF_TOKEN={secret}"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.secret_env() == {"HF_TOKEN": secret}
    page = client.get(f"/jobs/{job.pk}/edit/").content.decode()
    assert "HF_TOKEN" in page and secret not in page
    assert secret not in repr(list(Event.objects.values_list("detail", flat=True)))
    client.post(f"/jobs/{job.pk}/edit/", fields)  # left empty: kept
    job.refresh_from_db()
    assert job.secret_env() == {"HF_TOKEN": secret}
    client.post(f"/jobs/{job.pk}/edit/", {**fields, "clear_secret_env": "on"})
    job.refresh_from_db()
    assert job.secret_env() == {}


def test_the_api_takes_the_same_reasons_for_stop_and_delete(operator_api, admin_api):
    job = jf.job(name="api-chat", desired_state="running")
    assert operator_api.post(f"/api/v1/jobs/{job.pk}/stop/", {"reason": "x" * 501}, format="json").status_code == 400
    job.refresh_from_db()
    assert job.desired_state == "running"
    response = operator_api.post(f"/api/v1/jobs/{job.pk}/stop/", {"reason": "drain for upgrade"}, format="json")
    assert response.status_code == 202
    assert operator_api.post(f"/api/v1/jobs/{job.pk}/stop/").status_code == 202  # the body stays optional
    stops = Event.objects.filter(verb="stop", object_id=str(job.pk)).order_by("id")
    assert [e.detail for e in stops] == [{"reason": "drain for upgrade"}, {}]
    assert admin_api.delete(f"/api/v1/jobs/{job.pk}/?reason=" + "y" * 501).status_code == 400
    assert admin_api.delete(f"/api/v1/jobs/{job.pk}/?reason=retired").status_code == 204
    assert Event.objects.get(verb="delete", object_type="job").detail == {"name": "api-chat", "reason": "retired"}

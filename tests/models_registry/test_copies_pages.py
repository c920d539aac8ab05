"""The copies on the version page: listed with their progress, the buttons that fit each status and role,
the page actions that go through the copy services, and the Deploy button filling the job form."""

import pytest
from django.test import Client

from models_registry.models import ModelCopy
from nodes.models import Accelerator, Node
from tests import factories
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def version():
    version = jf.version(name="DeepSeek-R1", version="w8a8", quantization="w8a8", memory=700 << 30)
    node = factories.node(name="npu-a", status="online")
    version.node = node
    version.format = "safetensors"
    version.save(update_fields=["node", "format"])
    ModelCopy.objects.create(version=version, node=node, path=version.source_uri, origin=True, status="ready")
    ModelCopy.objects.create(version=version, node=factories.node(name="npu-b"), path="/m/r1", status="copying",
                             progress=0.4, bytes_done=40 << 30, size_bytes=100 << 30, status_detail="streaming")
    return version


def test_the_version_page_lists_copies_with_progress_and_operator_buttons(make_user, version):
    text = browser(make_user("operator")).get(f"/models/versions/{version.pk}/").content.decode()
    assert 'id="copies"' in text and "npu-b" in text and "/m/r1" in text and "width:40.0%" in text
    assert "40.0\xa0GB" in text and "streaming" in text
    assert f"/models/versions/{version.pk}/copies/" in text  # the copy form
    assert "/cancel/" in text and 'id="deploy"' not in text  # deploying creates a job: admins only
    viewer = browser(make_user("viewer")).get(f"/models/versions/{version.pk}/").content.decode()
    assert "npu-b" in viewer and "/cancel/" not in viewer and 'id="copy-form"' not in viewer


def test_cancel_from_the_page_fails_the_copy_and_a_viewer_may_not(make_user, version):
    copy = ModelCopy.objects.get(node__name="npu-b")
    url = f"/models/versions/{version.pk}/copies/{copy.pk}/cancel/"
    assert browser(make_user("viewer")).post(url).status_code == 403
    response = browser(make_user("operator")).post(url)
    assert response.status_code == 302
    copy.refresh_from_db()
    assert copy.status == "failed" and copy.status_detail.startswith("cancelled by")


def test_removing_the_origin_from_the_page_shows_the_conflict(make_user, version):
    origin = ModelCopy.objects.get(origin=True)
    client = browser(make_user("operator"))
    page = client.post(f"/models/versions/{version.pk}/copies/{origin.pk}/remove/", follow=True)
    assert "the console removes only copies it made" in page.content.decode()
    assert ModelCopy.objects.get(pk=origin.pk).status == "ready"


def test_deploy_fills_the_job_form_from_the_recommendation(make_user, version):
    for name in ("npu-a", "npu-b"):
        node = Node.objects.get(name=name)
        node.status = "online"
        node.facts = {"cann_version": "8.2"}
        node.save(update_fields=["status", "facts"])
        factories.accelerators(node, count=8, vendor="huawei")
    Accelerator.objects.update(memory_total_bytes=64 << 30)
    client = browser(make_user("admin"))
    response = client.get(f"/jobs/deploy/{version.pk}/")
    assert response.status_code == 302 and "/jobs/add/?" in response["Location"]
    assert "engine=vllm-ascend" in response["Location"] and "nodes_per_replica=2" in response["Location"]
    form = client.get(response["Location"]).content.decode()
    assert 'value="vllm-ascend" selected' in form and 'name="nodes_per_replica" value="2"' in form
    assert browser(make_user("operator")).get(f"/jobs/deploy/{version.pk}/").status_code == 403

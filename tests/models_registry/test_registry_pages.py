"""Registry pages: the model list with versions, the version page (files and checksums, evaluations
with parent deltas, lineage, aliases, jobs), the register form and the verify button."""

import pytest
from django.core.management import call_command
from django.test import Client

from models_registry import services
from models_registry.models import ModelVersion
from tests.jobs import factories as job_factories

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def catalog():
    call_command("load_catalog", stdout=open("/dev/null", "w"))


def test_the_models_page_lists_models_with_their_versions_and_scores(make_user, catalog):
    page = browser(make_user("viewer")).get("/models/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "DeepSeek-R1" in text and "w4a16" in text and "CEval 88.78" in text and "TeleChat-7B" in text
    assert "Register a version" not in text  # viewers do not get the admin buttons


def test_the_version_page_shows_deltas_lineage_aliases_and_jobs(make_user, catalog):
    w8a8 = ModelVersion.objects.get(model__name="DeepSeek-R1", version="w8a8")
    services.promote(w8a8, "production")
    job_factories.job(name="r1-w8a8-chat", model_version=w8a8, engine="mindie")
    page = browser(make_user("viewer")).get(f"/models/versions/{w8a8.pk}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "89.52" in text and "91.8" in text and "−2.28" in text
    assert "DeepSeek-R1:fp8" in text and "DeepSeek-R1:bf16" in text  # lineage
    assert "production" in text and "r1-w8a8-chat" in text
    assert "js/model_version.js" in text and 'id="verify"' not in text


def test_the_version_page_shows_files_with_their_checksum_state_and_a_verify_button(
        make_user, model, local_node, safetensors_dir):
    version = services.register_version(model=model, version="bf16", source_uri=str(safetensors_dir), node=local_node)
    services.import_version(version.pk)
    client = browser(make_user("operator"))
    text = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert "config.json" in text and "not verified" in text and 'id="verify"' in text
    response = client.post(f"/models/versions/{version.pk}/verify/")
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.status == "verifying"
    text = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert 'data-working="1"' in text and 'data-live-on="modelversion"' in text
    services.verify_version(version.pk)
    text = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert 'data-working="0"' in text and version.files.first().path in text
    assert ModelVersion.objects.get(pk=version.pk).files.first().sha256 in text


def test_an_admin_registers_a_version_with_the_form(make_user, model, local_node, safetensors_dir,
                                                    django_capture_on_commit_callbacks):
    client = browser(make_user("admin"))
    assert client.get("/models/versions/add/").status_code == 200
    bad = client.post("/models/versions/add/", {"model": model.pk, "version": "bf16", "source_uri": "nope"})
    assert bad.status_code == 200 and "neither an absolute path nor a URI" in bad.content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/models/versions/add/", {"model": model.pk, "version": "bf16",
                                                         "source_uri": str(safetensors_dir)})
    assert response.status_code == 302 and len(callbacks) == 1
    version = ModelVersion.objects.get(model=model, version="bf16")
    assert version.import_pending and version.node == local_node


def test_a_viewer_cannot_use_the_write_pages(make_user, model):
    client = browser(make_user("viewer"))
    version = services.register_version(model=model, version="v", source_uri="hf://o/n", quantization="bf16")
    assert client.get("/models/versions/add/").status_code == 403
    assert client.post(f"/models/versions/{version.pk}/verify/").status_code == 403
    assert client.post(f"/models/versions/{version.pk}/promote/", {"alias": "production"}).status_code == 403


def test_the_models_link_is_in_the_navigation(make_user):
    assert 'href="/models/"' in browser(make_user("viewer")).get("/models/").content.decode()

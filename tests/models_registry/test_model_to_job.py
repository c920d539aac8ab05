"""No dead ends from model to version (issue 17, item 6): a version form with no model offers to name a
new one inline (or to add one and come back with it chosen), adding a model asks only its name
(inspection fills in the rest), and the starter catalog loads from the page."""

import re

import pytest
from django.test import Client

from models_registry import services
from models_registry.models import Model, ModelVersion

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin(make_user):
    return browser(make_user("admin"))


def test_a_version_form_without_models_says_so_and_registers_the_version_with_a_new_model(
        admin, local_node, safetensors_dir, django_capture_on_commit_callbacks):
    page = admin.get("/models/versions/add/").content.decode()
    assert 'id="no-models"' in page and 'name="new_model"' in page and "/models/add/?then=version" in page
    with django_capture_on_commit_callbacks(execute=False):
        response = admin.post("/models/versions/add/", {"new_model": "Tiny-Llama", "version": "bf16",
                                                        "source_uri": str(safetensors_dir)})
    version = ModelVersion.objects.get(model__name="Tiny-Llama", version="bf16")
    assert response.status_code == 302 and response["Location"] == f"/models/versions/{version.pk}/"
    model = version.model
    assert model.parameters is None and model.architecture == "" and model.modality == "text"
    # What the form did not ask, the inspection of the version's directory fills in.
    services.import_version(version.pk)
    model.refresh_from_db()
    assert model.parameters and model.architecture == "LlamaForCausalLM"


def test_a_refused_version_leaves_no_new_model_behind(admin):
    response = admin.post("/models/versions/add/", {"new_model": "Orphan", "version": "bf16", "source_uri": "nope"})
    assert response.status_code == 200 and "neither an absolute path nor a URI" in response.content.decode()
    assert not Model.objects.filter(name="Orphan").exists() and not ModelVersion.objects.exists()


def test_the_version_form_wants_one_model_either_chosen_or_new(admin, model):
    neither = admin.post("/models/versions/add/", {"version": "bf16", "source_uri": "hf://o/n"})
    assert "Choose a model, or name a new one below." in neither.content.decode()
    both = admin.post("/models/versions/add/", {"model": model.pk, "new_model": "Other", "version": "bf16",
                                                "source_uri": "hf://o/n"})
    assert "Either choose a model or name a new one, not both." in both.content.decode()
    taken = admin.post("/models/versions/add/", {"new_model": model.name, "version": "bf16", "source_uri": "hf://o/n"})
    assert taken.status_code == 200 and "already exists" in taken.content.decode()
    assert not ModelVersion.objects.exists() and Model.objects.count() == 1


def test_adding_a_model_asks_only_its_name_and_can_return_to_the_version_form_with_it_chosen(admin):
    response = admin.post("/models/add/?then=version", {"name": "Qwen3-8B"})
    model = Model.objects.get(name="Qwen3-8B")
    assert model.modality == "text" and model.parameters is None
    assert response.status_code == 302 and response["Location"] == f"/models/versions/add/?model={model.pk}"
    page = admin.get(response["Location"]).content.decode()
    assert re.search(rf'<option value="{model.pk}" selected>Qwen3-8B</option>', page)
    assert admin.post("/models/add/", {"name": "Plain"})["Location"] == "/models/"


def test_the_empty_model_list_loads_the_starter_catalog_with_one_click(admin, make_user):
    page = admin.get("/models/").content.decode()
    assert 'id="models-empty"' in page and 'action="/models/catalog/load/"' in page
    assert "manage.py load_catalog" not in page
    viewer = browser(make_user("viewer"))
    assert viewer.post("/models/catalog/load/").status_code == 403 and not Model.objects.exists()
    assert admin.get("/models/catalog/load/").status_code == 405
    response = admin.post("/models/catalog/load/", follow=True)
    assert response.status_code == 200 and "Starter catalog loaded" in response.content.decode()
    assert Model.objects.filter(name="DeepSeek-R1").exists()
    versions = ModelVersion.objects.count()
    admin.post("/models/catalog/load/")  # idempotent
    assert ModelVersion.objects.count() == versions

"""``manage.py load_catalog``: the seed's models and scores, idempotent."""

import pytest
from django.core.management import call_command

from models_registry.api.serializers import EvaluationSerializer
from models_registry.models import Evaluation, Model, ModelVersion

pytestmark = pytest.mark.django_db


def load():
    call_command("load_catalog", stdout=open("/dev/null", "w"))


def test_the_catalog_loads_the_seed_models_with_their_ceval_scores():
    load()
    names = set(Model.objects.values_list("name", flat=True))
    assert {"DeepSeek-V3", "DeepSeek-R1", "Qwen2.5-7B-Instruct", "Llama-3.1-8B-Instruct", "glm-4-9b-chat",
            "TeleChat-7B"} <= names
    ceval = {str(e.version): e.score for e in Evaluation.objects.filter(benchmark="CEval").select_related(
        "version__model")}
    assert ceval == {"DeepSeek-R1:bf16": 91.8, "DeepSeek-R1:w8a8": 89.52, "DeepSeek-R1:w4a16": 88.78,
                     "DeepSeek-V3:fp8": 86.5, "DeepSeek-V3:0324-w4a16": 87.82}
    w8a8 = ModelVersion.objects.get(model__name="DeepSeek-R1", version="w8a8")
    assert w8a8.parent.version == "bf16" and w8a8.parent_relation == "quantized"
    assert EvaluationSerializer(w8a8.evaluations.get(benchmark="CEval")).data["delta"] == pytest.approx(-2.28)


def test_catalog_entries_have_no_local_files_until_imported_but_a_memory_estimate():
    load()
    for version in ModelVersion.objects.all():
        assert version.catalog and version.status == "registered" and not version.import_pending
        assert version.files.count() == 0 and version.size_bytes is None
        assert version.memory_required_bytes and version.memory_estimate["kv_cache_known"]
    r1 = ModelVersion.objects.get(model__name="DeepSeek-R1", version="w8a8")
    assert r1.architecture["kv_lora_rank"] == 512 and r1.memory_estimate["kv_bytes_per_token"] == 70_272
    assert r1.memory_estimate["weights_bytes"] == 671_000_000_000
    glm = ModelVersion.objects.get(model__name="glm-4-9b-chat")
    assert glm.architecture["num_kv_heads"] == 2 and glm.architecture["num_layers"] == 40


def test_loading_the_catalog_twice_creates_no_duplicates():
    load()
    counts = (Model.objects.count(), ModelVersion.objects.count(), Evaluation.objects.count())
    load()
    assert (Model.objects.count(), ModelVersion.objects.count(), Evaluation.objects.count()) == counts
    assert counts[1] == 14


def test_an_imported_catalog_entry_is_left_alone_by_a_reload():
    load()
    version = ModelVersion.objects.get(model__name="Qwen2.5-7B-Instruct", version="bf16")
    ModelVersion.objects.filter(pk=version.pk).update(catalog=False, notes="ours now")
    load()
    version.refresh_from_db()
    assert version.catalog is False and version.notes == "ours now"

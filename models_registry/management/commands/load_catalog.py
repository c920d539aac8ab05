"""``manage.py load_catalog``: load the starter catalog (models_registry.catalog). Idempotent."""

from django.core.management.base import BaseCommand
from django.db import transaction

from console.core import audit
from models_registry import services
from models_registry.catalog import CATALOG, CEVAL_SOURCE
from models_registry.inspection.config import architecture_from_dict
from models_registry.models import Evaluation, Model, ModelVersion


class Command(BaseCommand):
    help = "Load the starter model catalog (DeepSeek V3/R1 and quantizations with CEval, Qwen, Llama, GLM, TeleChat)."

    @transaction.atomic
    def handle(self, *args, **options):
        created_models = created_versions = created_scores = 0
        for entry in CATALOG:
            model, made = Model.objects.get_or_create(name=entry["name"], defaults={
                key: entry[key] for key in ("family", "publisher", "parameters", "architecture", "license")
            } | {"description": entry.get("description", "")})
            created_models += made
            if made:
                audit.record("create", model, detail={"catalog": True})
            architecture = architecture_from_dict(entry["config"]).to_dict()
            by_name: dict[str, ModelVersion] = {}
            for item in entry["versions"]:
                version = ModelVersion.objects.filter(model=model, version=item["version"]).first()
                if version is None:
                    parent = by_name.get(item.get("parent"))
                    version = services.register_version(
                        model=model, version=item["version"], source_uri=item["source_uri"],
                        quantization=item["quantization"], format=item.get("format", "safetensors"),
                        parent=parent, parent_relation=item.get("relation", "") if parent else "",
                        parameters=entry["parameters"], architecture=architecture, notes=item.get("notes", ""),
                        catalog=True,
                    )
                    audit.record("create", version, detail={"catalog": True})
                    created_versions += 1
                by_name[item["version"]] = version
                for benchmark, score in item.get("evaluations", ()):
                    if not Evaluation.objects.filter(version=version, benchmark=benchmark).exists():
                        Evaluation.objects.create(version=version, benchmark=benchmark, score=score,
                                                  notes=CEVAL_SOURCE)
                        created_scores += 1
        total = sum(len(e["versions"]) for e in CATALOG)
        self.stdout.write(self.style.SUCCESS(
            f"Catalog: {created_models} model(s), {created_versions} version(s) and {created_scores} score(s) "
            f"added; {total - created_versions} version(s) were already present."))

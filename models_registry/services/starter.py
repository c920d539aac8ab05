"""The starter catalog (models_registry.catalog) loaded into the registry: from ``manage.py
load_catalog`` and from the model list's button, so that a new console shows a realistic registry
without a terminal. Idempotent: what is there already is left alone."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from console.core import audit
from models_registry.catalog import CATALOG, CEVAL_SOURCE
from models_registry.inspection.config import architecture_from_dict
from models_registry.models import Evaluation, Model, ModelVersion
from models_registry.services.registration import register_version


@dataclass(frozen=True)
class CatalogLoad:
    """What one load added, and how many catalog versions were present already."""

    models: int
    versions: int
    scores: int
    already: int


@transaction.atomic
def load_catalog(request=None) -> CatalogLoad:
    """Add the catalog's models, versions (``catalog=True``, no files) and scores that are missing."""
    created_models = created_versions = created_scores = 0
    for entry in CATALOG:
        model, made = Model.objects.get_or_create(name=entry["name"], defaults={
            key: entry[key] for key in ("family", "publisher", "parameters", "architecture", "license")
        } | {"description": entry.get("description", "")})
        created_models += made
        if made:
            audit.record("create", model, request=request, detail={"catalog": True})
        architecture = architecture_from_dict(entry["config"]).to_dict()
        by_name: dict[str, ModelVersion] = {}
        for item in entry["versions"]:
            version = ModelVersion.objects.filter(model=model, version=item["version"]).first()
            if version is None:
                parent = by_name.get(item.get("parent"))
                version = register_version(
                    model=model, version=item["version"], source_uri=item["source_uri"],
                    quantization=item["quantization"], format=item.get("format", "safetensors"),
                    parent=parent, parent_relation=item.get("relation", "") if parent else "",
                    parameters=entry["parameters"], architecture=architecture, notes=item.get("notes", ""),
                    catalog=True,
                )
                audit.record("create", version, request=request, detail={"catalog": True})
                created_versions += 1
            by_name[item["version"]] = version
            for benchmark, score in item.get("evaluations", ()):
                if not Evaluation.objects.filter(version=version, benchmark=benchmark).exists():
                    Evaluation.objects.create(version=version, benchmark=benchmark, score=score, notes=CEVAL_SOURCE)
                    created_scores += 1
    total = sum(len(e["versions"]) for e in CATALOG)
    return CatalogLoad(created_models, created_versions, created_scores, total - created_versions)

"""The data migration that gives every existing version with files on a node its origin copy."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("models_registry", "0002_modelversion_import_pending_and_more")]
AFTER = [("models_registry", "0004_origin_copies")]


def test_existing_versions_get_their_origin_copy_ready_when_verified():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Model = apps.get_model("models_registry", "Model")
    ModelVersion = apps.get_model("models_registry", "ModelVersion")
    node = factories.node(name="npu-a")  # the nodes app is not migrated back: today's model
    model = Model.objects.create(name="Qwen")
    ModelVersion.objects.create(model=model, version="bf16", source_uri="/data/qwen", node_id=node.pk,
                                status="verified", size_bytes=1000)
    ModelVersion.objects.create(model=model, version="int8", source_uri="file:///data/qwen%20int8", node_id=node.pk,
                                status="registered")
    ModelVersion.objects.create(model=model, version="hub", source_uri="hf://Qwen/Qwen2.5-7B", node=None)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    ModelCopy = apps.get_model("models_registry", "ModelCopy")
    rows = {c.version.version: c for c in ModelCopy.objects.select_related("version")}
    assert set(rows) == {"bf16", "int8"}
    assert rows["bf16"].status == "ready" and rows["bf16"].origin and rows["bf16"].path == "/data/qwen"
    assert rows["bf16"].bytes_done == 1000
    assert rows["int8"].status == "pending" and rows["int8"].path == "/data/qwen int8"
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

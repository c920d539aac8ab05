"""The model version page follows its version on the stream (topic ``modelversion:<id>``): the import's
files and every transition tell the page to re-read its live regions, a verification publishes its
progress, and the page subscribes to that topic instead of polling the API and reloading."""

from __future__ import annotations

import re

import pytest

from console.core.models import StreamEntry
from console.streams import TopicError, check_topic
from models_registry import services
from models_registry.models import ModelVersion
from tests.live import live_config

pytestmark = pytest.mark.django_db


def payloads(topic: str) -> list[dict]:
    return [e.payload for e in StreamEntry.objects.filter(topic=topic).order_by("pk")]


def notices(topic: str) -> int:
    return sum(1 for p in payloads(topic) if "modelversion" in p.get("state", {}).get("changed", {}))


def progress(topic: str) -> list[float]:
    return [p["state"]["progress"]["modelversion"] for p in payloads(topic)
            if "progress" in p.get("state", {})]




def test_an_import_and_a_verification_tell_the_version_page_with_its_progress(model, local_node, safetensors_dir,
                                                                             monkeypatch):
    with open(safetensors_dir / "blob.dat", "wb") as f:
        f.truncate(128 << 20)  # sparse: a few progress lines while hashing
    monkeypatch.setattr(services.verification, "PROGRESS_INTERVAL_S", 0.0)
    version = services.register_version(model=model, version="bf16", source_uri=str(safetensors_dir),
                                        node=local_node)
    topic = f"modelversion:{version.pk}"
    before = notices(topic)
    services.import_version(version.pk)
    assert notices(topic) == before + 1, "the import's files did not tell the page"

    version.refresh_from_db()
    services.request_verify(version)
    assert notices(topic) == before + 2, "registered -> verifying did not tell the page"
    services.verify_version(version.pk)
    version.refresh_from_db()
    assert version.status == "verified"
    assert notices(topic) == before + 3, "verifying -> verified did not tell the page"
    seen = progress(topic)
    assert seen and seen == sorted(seen) and all(0 <= p <= 1 for p in seen), seen


def test_a_same_status_write_that_shows_nothing_new_does_not_tell_the_page(model, local_node, safetensors_dir):
    version = services.register_version(model=model, version="bf16", source_uri=str(safetensors_dir),
                                        node=local_node)
    services.import_version(version.pk)
    version = ModelVersion.objects.get(pk=version.pk)
    topic = f"modelversion:{version.pk}"
    before = notices(topic)
    services.transition_version(version, version.status, version.status_detail)
    assert notices(topic) == before


def test_the_version_topic_names_an_existing_version(model, local_node, make_user):
    viewer = make_user("viewer")
    version = services.register_version(model=model, version="v1", source_uri="/models/none", node=local_node)
    check_topic(viewer, f"modelversion:{version.pk}")
    with pytest.raises(TopicError):
        check_topic(viewer, f"modelversion:{version.pk + 1}")


def test_the_version_page_follows_its_topic_in_live_regions_without_polling(client, make_user, model, local_node,
                                                                            safetensors_dir):
    client.force_login(make_user("viewer"))
    version = services.register_version(model=model, version="bf16", source_uri=str(safetensors_dir),
                                        node=local_node)
    page = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert live_config(page)["topics"] == [f"modelversion:{version.pk}"]
    for region in ("version-head", "version-facts", "version-files", "version-history"):
        assert re.search(rf'id="{region}"[^>]*data-live-region data-live-on="modelversion"', page), region
    assert 'id="stream-status"' in page and "js/live_regions.js" in page and "js/model_version.js" in page
    assert f'data-url="/api/v1/model-versions/{version.pk}/"' not in page, "the page still polls the API"
    # While the import is pending the progress card is shown; a re-read after it shows the files.
    assert re.search(r'id="live" data-working="1"', page)
    services.import_version(version.pk)
    regions = client.get(f"/models/versions/{version.pk}/", headers={"X-Live-Regions": "1"}).content.decode()
    assert re.search(r'id="live" data-working="0"[^>]*hidden', regions)
    assert "model-00001-of-00002.safetensors" in regions


def test_a_copys_status_and_progress_reach_its_version_page(client, make_user):
    from models_registry.models import ModelCopy
    from models_registry.services import common
    from tests import factories
    from tests.jobs import factories as jf

    version = jf.job().model_version
    copy = ModelCopy.objects.create(version=version, node=factories.node(name="b"), path="/models/r1",
                                    status="pending")
    topic = f"modelversion:{version.pk}"
    before = [p for p in payloads(topic) if "modelcopy" in p.get("state", {}).get("changed", {})]
    assert common.transition_copy(copy, "copying", "copying from local")
    changed = [p for p in payloads(topic) if "modelcopy" in p.get("state", {}).get("changed", {})]
    assert len(changed) == len(before) + 1, "a copy's transition did not tell its version's page"
    copy.progress, copy.bytes_done, copy.size_bytes = 0.5, 512, 1024
    common.publish(copy)
    snapshots = [p["state"]["copies"][str(copy.pk)] for p in payloads(topic) if "copies" in p.get("state", {})]
    assert snapshots[-1]["progress"] == 0.5 and snapshots[-1]["status"] == "copying"
    client.force_login(make_user("viewer"))
    page = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert re.search(r'id="version-copies" data-live-region data-live-on="modelcopy modelversion"', page)
    assert f'id="copy-{copy.pk}"' in page.split('id="version-copies"')[1]

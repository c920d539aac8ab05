"""A live page's stream cursor comes before what the page shows: a change committed while the page was being
drawn is sent again by its socket, never lost between the two (the version page of an import that ended while
the page was drawn kept showing no files until a reload: a clean-clone CI run's browser test)."""


import pytest

from console.core import broadcast
from models_registry import services as registry
from tests.jobs import factories as jf
from tests.live import live_config

pytestmark = pytest.mark.django_db




def test_a_change_committed_while_the_version_page_is_drawn_comes_after_the_pages_cursor(client, make_user,
                                                                                          monkeypatch):
    version = jf.version(name="Tiny", version="bf16")
    client.force_login(make_user("viewer"))
    stamps = []
    real_lineage = registry.lineage

    def lineage_while_an_import_ends(v):  # the page has read the version; the import commits its change now
        stamps.append(broadcast.publish_many([(registry.version_topic(v.pk), {"state": {"changed": {"x": 1}}})])[0])
        return real_lineage(v)

    monkeypatch.setattr(registry, "lineage", lineage_while_an_import_ends)
    response = client.get(f"/models/versions/{version.pk}/")
    assert response.status_code == 200 and stamps
    assert live_config(response)["cursor"] < stamps[0]  # the socket sends the change again

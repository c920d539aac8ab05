"""What a probe costs the console (issue 12, item 6: at most 6 ms of its CPU per probe at 1000 nodes):
storing a probe takes a number of queries that does not grow with the node's accelerators, and the
probe's output leaves the node in one write (each small write was an SSH packet of its own, which the
console paid for in CPU), counted, not timed."""

import os
import select
import subprocess

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from nodes import services
from nodes.models import Accelerator, Node
from nodes.probes.parsers.common import AcceleratorReading
from nodes.probes.result import ProbeResult, parse_probe_output
from nodes.probes.runner import ProbeOutcome
from nodes.probes.script import PROBE_SCRIPT
from tests import factories
from tests.nodes.test_probe_script import BASH, FAKE_BIN


def outcome(count: int, util: float) -> ProbeOutcome:
    readings = [AcceleratorReading(index=i, vendor="nvidia", kind="gpu", model="H100", uuid=f"GPU-{i}",
                                   bus_id=f"00000000:{i:02X}:00.0", memory_total_bytes=80 << 30,
                                   memory_used_bytes=i << 30, utilization_percent=util + i, temperature_c=50.0,
                                   power_w=300.0, health="ok", extra={"pstate": "P0"}) for i in range(count)]
    return ProbeOutcome(True, result=ProbeResult(facts={"hostname": "gpu"}, accelerators=readings),
                        duration_ms=5)


def store(node, count: int, util: float) -> int:
    with CaptureQueriesContext(connection) as ctx:
        services.apply_probe_outcome(node, outcome(count, util))
    return len(ctx)


@pytest.mark.django_db
def test_storing_a_probe_takes_the_same_queries_for_2_and_16_accelerators_and_writes_each_its_values():
    small, large = factories.node(), factories.node()
    store(small, 2, 10.0)
    store(large, 16, 10.0)  # first sight: the accelerators are created
    assert store(small, 2, 20.0) == store(large, 16, 30.0) <= 7
    values = dict(Accelerator.objects.filter(node=large).values_list("index", "utilization_percent"))
    assert values == {i: 30.0 + i for i in range(16)}
    assert all(extra == {"pstate": "P0"} for extra in Accelerator.objects.values_list("extra", flat=True))


@pytest.mark.django_db
def test_accelerators_that_stay_away_keep_the_node_degraded_without_a_query_of_their_own():
    node = factories.node()
    store(node, 4, 10.0)
    services.apply_probe_outcome(node, outcome(2, 10.0))
    assert node.status == "degraded" and "accelerators missing: nvidia2, nvidia3" in node.status_detail
    services.apply_probe_outcome(node, outcome(3, 10.0))  # one comes back, one is still away
    assert node.status == "degraded" and node.status_detail.endswith("accelerators missing: nvidia3")
    services.apply_probe_outcome(node, outcome(4, 10.0))
    assert node.status == "online"


def test_the_probe_output_leaves_the_node_in_one_write_not_one_per_line():
    env = {"PATH": f"{FAKE_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    process = subprocess.Popen([BASH, "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=env)
    process.stdin.write(PROBE_SCRIPT.encode())
    process.stdin.close()
    reads, chunks = 0, []
    try:
        while True:  # read as the output comes, as sshd does: one read per write that arrived alone
            select.select([process.stdout], [], [], 60)
            chunk = os.read(process.stdout.fileno(), 1 << 20)
            if not chunk:
                break
            reads += 1
            chunks.append(chunk)
    finally:
        process.wait(timeout=60)
    text = b"".join(chunks).decode()
    assert len(parse_probe_output(text).accelerators) == 16 and text.count("\n") > 100
    # A write above the pipe's atomic size (4 KiB) may reach the reader in a few parts; without the
    # gathering, every line came on its own (over a hundred reads).
    assert reads <= len(text) // 4096 + 2, reads


@pytest.mark.django_db
def test_due_nodes_are_claimed_once_in_one_statement_per_interval_and_move_by_their_own_interval():
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    due = [factories.node(probe_interval_s=30 if i % 2 else 60) for i in range(40)]
    later = factories.node(probe_interval_s=30)
    Node.objects.filter(pk__in=[n.pk for n in due]).update(next_probe_at=now - timedelta(seconds=1))
    Node.objects.filter(pk=later.pk).update(next_probe_at=now + timedelta(seconds=10))
    with CaptureQueriesContext(connection) as ctx:
        claimed = services.claim_due_nodes(now=now)
    assert claimed == sorted(n.pk for n in due) and len(ctx) == 3  # the due nodes, then one UPDATE per interval
    moved = dict(Node.objects.filter(pk__in=claimed).values_list("pk", "next_probe_at"))
    assert all(moved[n.pk] == now + timedelta(seconds=n.probe_interval_s) for n in due)
    assert services.claim_due_nodes(now=now) == []  # a second scheduler at the same instant gets none of them


@pytest.mark.django_db(transaction=True)
def test_a_usual_probe_of_a_node_is_five_statements_without_a_transaction_of_its_own(monkeypatch):
    """Load the node, read and write its accelerators, write the node, and one change stamp for its page:
    no re-read of the status after the SSH command, no BEGIN and COMMIT around a single write (each was a
    round trip of the console's, a thousand a round at a thousand nodes)."""
    node = factories.node(host_key="ssh-ed25519 AAAA")
    later = outcome(16, 20.0)
    later.result.facts["uptime_s"] = 3600  # a fact the node's page shows changed: its page is told
    probes = iter([outcome(16, 10.0), later])
    monkeypatch.setattr(services, "run_probe", lambda _node: next(probes))
    services.probe_node(node.pk)  # first sight: the accelerators are created
    with CaptureQueriesContext(connection) as ctx:
        services.probe_node(node.pk)
    statements = [q["sql"] for q in ctx.captured_queries]
    writes = [s for s in statements if s.split()[0] not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")]
    assert len(writes) == 5, statements
    if connection.vendor == "postgresql":
        assert writes == statements, statements  # not one transaction statement
    assert set(Accelerator.objects.filter(node=node).values_list("utilization_percent", flat=True)) == {
        20.0 + i for i in range(16)}


@pytest.mark.django_db
def test_a_node_put_in_maintenance_while_it_was_probed_stays_in_maintenance_with_the_probes_facts(monkeypatch):
    node = factories.node(host_key="ssh-ed25519 AAAA")

    def probe_while_an_operator_acts(probed):
        services.set_maintenance(Node.objects.get(pk=probed.pk), True, reason="disk swap")
        return outcome(2, 10.0)

    monkeypatch.setattr(services, "run_probe", probe_while_an_operator_acts)
    services.probe_node(node.pk)
    node.refresh_from_db()
    assert node.status == "maintenance" and node.facts == {"hostname": "gpu"} and node.accelerator_count == 2


def _usual_round(count: int, util: float) -> list:
    nodes = list(Node.objects.select_related("credential").filter(name__startswith="round-").order_by("pk"))
    return [(node, outcome(4, util)) for node in nodes[:count]]


@pytest.mark.django_db
def test_a_round_stores_its_usual_probes_in_the_same_few_statements_for_3_nodes_as_for_12():
    for i in range(12):
        node = factories.node(name=f"round-{i}", host_key="ssh-ed25519 AAAA")
        services.apply_probe_outcome(node, outcome(4, 1.0))  # first sight: accelerators created, status online
    counts = {}
    for count, util in ((3, 10.0), (12, 20.0)):
        with CaptureQueriesContext(connection) as ctx:
            services.store_probe_outcomes(_usual_round(count, util))
        counts[count] = len([q for q in ctx.captured_queries if q["sql"].split()[0] not in
                             ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")])
    # read the accelerators, write them, write the nodes, one change stamp each (their facts changed: no)
    assert counts[3] == counts[12] <= 4, counts
    assert set(Accelerator.objects.values_list("utilization_percent", flat=True)) == {20.0 + i for i in range(4)}
    assert set(Node.objects.filter(name__startswith="round-").values_list("accelerator_count", "status")) == {
        (4, "online")}


@pytest.mark.django_db
def test_in_a_round_a_status_change_a_new_accelerator_maintenance_and_a_concurrent_change_keep_their_meaning():
    from nodes.models import NodeStatusChange

    usual, sick, grown, resting, moved = (factories.node(name=f"round-{i}", host_key="ssh-ed25519 AAAA")
                                          for i in range(5))
    for node in (usual, sick, grown, resting, moved):
        services.apply_probe_outcome(node, outcome(4, 1.0))
    services.set_maintenance(resting, True, reason="disk swap")
    pairs = _usual_round(5, 30.0)
    pairs[1] = (pairs[1][0], outcome(4, 30.0))
    pairs[1][1].result.accelerators[2].health = "critical"
    pairs[2] = (pairs[2][0], outcome(5, 30.0))  # a fifth accelerator appeared
    Node.objects.filter(pk=moved.pk).update(status="unknown")  # someone else changed it after the round read it
    history_before = NodeStatusChange.objects.count()
    services.store_probe_outcomes(pairs)
    status = dict(Node.objects.filter(name__startswith="round-").values_list("name", "status"))
    assert status == {usual.name: "online", sick.name: "degraded", grown.name: "online", resting.name: "maintenance",
                      moved.name: "unknown"}  # theirs is kept, as with one probe on its own
    assert Node.objects.get(pk=sick.pk).status_detail == "unhealthy accelerators: nvidia2 critical"
    assert Accelerator.objects.filter(node=grown).count() == 5
    # The transition was recorded (sick: online -> degraded); the usual probes' writes are not transitions.
    assert NodeStatusChange.objects.count() - history_before == 1
    assert Node.objects.get(pk=moved.pk).accelerator_count == 4 and Node.objects.get(pk=moved.pk).last_seen
    assert set(Accelerator.objects.filter(node=resting).values_list("utilization_percent", flat=True)) == {
        30.0 + i for i in range(4)}

"""``GET /metrics``: the console's view of the cluster in Prometheus text exposition.

Built per scrape from the database by a prometheus_client collector (so the output is what
``promtool check metrics`` expects: base units, ratios rather than percents, ``_total`` counters,
HELP and TYPE for every family). A constant number of queries, whatever the cluster's size.

Families (label sets in braces):

* ``boom_nodes{status}``, ``boom_node_info{node,address,transport,status}``, ``boom_node_up{node}``,
  ``boom_node_last_seen_timestamp_seconds{node}``, and the node series sampled in the last 2 minutes:
  ``boom_node_cpu_utilization_ratio``, ``boom_node_memory_used_bytes``, ``boom_node_load1``,
  ``boom_node_disk_used_ratio``, ``boom_node_network_receive_bytes_per_second``,
  ``boom_node_network_transmit_bytes_per_second`` (``{node}``);
* ``boom_accelerators{vendor,kind,health}``, ``boom_accelerator_info{node,index,vendor,kind,model,uuid}``,
  ``boom_accelerator_health{node,index,vendor}`` (0 ok, 1 warning, 2 critical, -1 unknown),
  ``boom_accelerator_utilization_ratio``, ``boom_accelerator_memory_used_bytes``,
  ``boom_accelerator_memory_total_bytes``, ``boom_accelerator_temperature_celsius``,
  ``boom_accelerator_power_watts`` (``{node,index,vendor}``; latest sample, else the last probe);
* ``boom_jobs{state}``, ``boom_job_info{job,engine,state,desired_state}``, ``boom_job_replicas{job}``,
  ``boom_job_output_tokens_per_second``, ``boom_job_prompt_tokens_per_second``,
  ``boom_job_requests_per_second``, ``boom_job_requests_running``, ``boom_job_requests_waiting``,
  ``boom_job_time_to_first_token_p50_seconds``, ``boom_job_time_to_first_token_p99_seconds``,
  ``boom_job_kv_cache_usage_ratio`` (``{job}``);
* ``boom_instances{state}``, ``boom_instance_info{job,instance,replica,node,state}``,
  ``boom_instance_restarts_total{job,instance}``;
* ``boom_model_copies{status}`` (every status, zeros included), ``boom_model_copy_info{model,version,node,status}``,
  ``boom_model_copy_progress_ratio{model,version,node}`` and ``boom_model_copy_bytes{model,version,node}``
  (bytes written so far);
* ``boom_alerts{state,severity}`` (when the alerting app is installed).

Access: a viewer's token (``Authorization: Token <key>``, which Prometheus sends with
``authorization: {type: Token, credentials: <key>}``) or session; ``CONSOLE_METRICS_PUBLIC=true``
lets anyone scrape it.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import api_view, authentication_classes, permission_classes, renderer_classes
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer

from console.core.permissions import VIEWER, has_role
from console.core.tokens import HashedTokenAuthentication
from console.telemetry import series as telemetry
from jobs.models import Instance, Job
from models_registry.choices import CopyStatus
from models_registry.models import ModelCopy
from nodes.models import Accelerator, Node

WINDOW_S = 120  # samples older than this are not "current" any more
HEALTH = {"ok": 0, "warning": 1, "critical": 2}


def _gauge(name, documentation, labels=()):
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _latest(series_name: str, key: str) -> dict:
    return {v.labels[key]: v.value for v in telemetry.latest(series_name, WINDOW_S)}


class ConsoleCollector:
    """Yields every family above from the database (registered on a fresh registry per scrape)."""

    def collect(self):
        yield from self._nodes()
        yield from self._accelerators()
        yield from self._jobs()
        yield from self._copies()
        yield from self._alerts()

    def _nodes(self):
        nodes = list(Node.objects.values("pk", "name", "address", "transport", "status", "last_seen"))
        names = {n["pk"]: n["name"] for n in nodes}
        by_status = _gauge("boom_nodes", "Nodes by status.", ["status"])
        counts: dict[str, int] = {}
        info = _gauge("boom_node_info", "One per node, with its address, transport and status.",
                      ["node", "address", "transport", "status"])
        up = _gauge("boom_node_up", "1 when the node's last probe reached it (online or degraded).", ["node"])
        seen = _gauge("boom_node_last_seen_timestamp_seconds", "When a probe last reached the node.", ["node"])
        for n in nodes:
            counts[n["status"]] = counts.get(n["status"], 0) + 1
            info.add_metric([n["name"], n["address"], n["transport"], n["status"]], 1)
            up.add_metric([n["name"]], 1 if n["status"] in ("online", "degraded") else 0)
            if n["last_seen"] is not None:
                seen.add_metric([n["name"]], n["last_seen"].timestamp())
        for status, count in sorted(counts.items()):
            by_status.add_metric([status], count)
        yield from (by_status, info, up, seen)
        for series_name, name, doc, scale in (
                ("node.cpu_percent", "boom_node_cpu_utilization_ratio", "CPU busy, all cores (0-1).", 0.01),
                ("node.memory_used_bytes", "boom_node_memory_used_bytes", "Memory in use.", 1),
                ("node.load1", "boom_node_load1", "Load average over one minute.", 1),
                ("node.disk_used_percent", "boom_node_disk_used_ratio", "Root file system used (0-1).", 0.01),
                ("node.network_rx_bytes_per_s", "boom_node_network_receive_bytes_per_second",
                 "Network received, all interfaces but loopback.", 1),
                ("node.network_tx_bytes_per_s", "boom_node_network_transmit_bytes_per_second",
                 "Network sent, all interfaces but loopback.", 1)):
            family = _gauge(name, doc + " Latest telemetry sample.", ["node"])
            for node_id, value in sorted(_latest(series_name, "node").items()):
                if node_id in names:
                    family.add_metric([names[node_id]], value * scale)
            yield family

    def _accelerators(self):
        rows = list(Accelerator.objects.filter(present=True).values(
            "pk", "index", "vendor", "kind", "model", "uuid", "health", "memory_total_bytes", "memory_used_bytes",
            "utilization_percent", "temperature_c", "power_w", "node__name"))
        counts: dict[tuple, int] = {}
        for row in rows:
            key = (row["vendor"], row["kind"], row["health"])
            counts[key] = counts.get(key, 0) + 1
        by_health = _gauge("boom_accelerators", "Present accelerators by vendor, kind and health.",
                           ["vendor", "kind", "health"])
        for key, count in sorted(counts.items()):
            by_health.add_metric(list(key), count)
        yield by_health
        labels = ["node", "index", "vendor"]
        info = _gauge("boom_accelerator_info", "One per present accelerator.",
                      ["node", "index", "vendor", "kind", "model", "uuid"])
        health = _gauge("boom_accelerator_health", "0 ok, 1 warning, 2 critical, -1 unknown.", labels)
        latest = {name: _latest(f"accelerator.{name}", "accelerator") for name in (
            "utilization_percent", "memory_used_bytes", "temperature_c", "power_w", "health")}
        families = {
            "utilization_percent": (_gauge("boom_accelerator_utilization_ratio", "Utilisation (0-1).", labels), 0.01),
            "memory_used_bytes": (_gauge("boom_accelerator_memory_used_bytes", "Memory in use.", labels), 1),
            "temperature_c": (_gauge("boom_accelerator_temperature_celsius", "Temperature.", labels), 1),
            "power_w": (_gauge("boom_accelerator_power_watts", "Power draw.", labels), 1),
        }
        total = _gauge("boom_accelerator_memory_total_bytes", "Memory size.", labels)
        for row in rows:
            values = [row["node__name"], str(row["index"]), row["vendor"]]
            info.add_metric(values + [row["kind"], row["model"], row["uuid"]], 1)
            code = latest["health"].get(row["pk"], HEALTH.get(row["health"], -1))
            health.add_metric(values, code)
            if row["memory_total_bytes"] is not None:
                total.add_metric(values, row["memory_total_bytes"])
            for name, (family, scale) in families.items():
                value = latest[name].get(row["pk"], row[name])
                if value is not None:
                    family.add_metric(values, value * scale)
        yield from (info, health, total, *(family for family, _ in families.values()))

    def _jobs(self):
        jobs = list(Job.objects.values("pk", "name", "engine", "state", "desired_state", "replicas"))
        names = {j["pk"]: j["name"] for j in jobs}
        by_state = _gauge("boom_jobs", "Jobs by state.", ["state"])
        for state, count in sorted(Job.objects.values_list("state").annotate(n=Count("id")).order_by()):
            by_state.add_metric([state], count)
        info = _gauge("boom_job_info", "One per job.", ["job", "engine", "state", "desired_state"])
        replicas = _gauge("boom_job_replicas", "Replicas the job asks for.", ["job"])
        for j in jobs:
            info.add_metric([j["name"], j["engine"], j["state"], j["desired_state"]], 1)
            replicas.add_metric([j["name"]], j["replicas"])
        yield from (by_state, info, replicas)
        for series_name, name, doc, scale in (
                ("job.output_tokens_per_s", "boom_job_output_tokens_per_second", "Output tokens per second.", 1),
                ("job.prompt_tokens_per_s", "boom_job_prompt_tokens_per_second", "Prompt tokens per second.", 1),
                ("job.requests_per_s", "boom_job_requests_per_second", "Requests finished per second.", 1),
                ("job.requests_running", "boom_job_requests_running", "Requests being processed.", 1),
                ("job.requests_waiting", "boom_job_requests_waiting", "Requests waiting in the queue.", 1),
                ("job.ttft_p50_ms", "boom_job_time_to_first_token_p50_seconds", "Time to first token, median.",
                 0.001),
                ("job.ttft_p99_ms", "boom_job_time_to_first_token_p99_seconds",
                 "Time to first token, 99th percentile.", 0.001),
                ("job.kv_cache_usage_percent", "boom_job_kv_cache_usage_ratio", "KV-cache usage (0-1).", 0.01)):
            family = _gauge(name, doc + " Latest scrape of the engines.", ["job"])
            for job_id, value in sorted(_latest(series_name, "job").items()):
                if job_id in names:
                    family.add_metric([names[job_id]], value * scale)
            yield family
        instances = list(Instance.objects.values("pk", "job__name", "replica", "node__name", "state",
                                                 "restart_count"))
        by_state = _gauge("boom_instances", "Instances by state.", ["state"])
        counts: dict[str, int] = {}
        info = _gauge("boom_instance_info", "One per instance.", ["job", "instance", "replica", "node", "state"])
        restarts = CounterMetricFamily("boom_instance_restarts", "Restarts of the instance by the reconciler.",
                                       labels=["job", "instance"])
        for i in instances:
            counts[i["state"]] = counts.get(i["state"], 0) + 1
            info.add_metric([i["job__name"], str(i["pk"]), str(i["replica"]), i["node__name"] or "", i["state"]], 1)
            restarts.add_metric([i["job__name"], str(i["pk"])], i["restart_count"])
        for state, count in sorted(counts.items()):
            by_state.add_metric([state], count)
        yield from (by_state, info, restarts)

    def _copies(self):
        by_status = _gauge("boom_model_copies", "Copies of model versions on nodes, by status.", ["status"])
        info = _gauge("boom_model_copy_info", "A model version's copy on a node.",
                      ["model", "version", "node", "status"])
        progress = _gauge("boom_model_copy_progress_ratio", "Fraction of a copy's bytes written (1 when ready).",
                          ["model", "version", "node"])
        written = _gauge("boom_model_copy_bytes", "Bytes of a copy written on its node so far.",
                         ["model", "version", "node"])
        counts = dict.fromkeys(CopyStatus.values, 0)
        rows = ModelCopy.objects.values_list("version__model__name", "version__version", "node__name", "status",
                                             "progress", "bytes_done").order_by("pk")
        for model, version, node, status, ratio, done in rows:
            counts[status] = counts.get(status, 0) + 1
            info.add_metric([model, version, node, status], 1)
            progress.add_metric([model, version, node], 1.0 if status == CopyStatus.READY else (ratio or 0.0))
            written.add_metric([model, version, node], done or 0)
        for status, count in counts.items():
            by_status.add_metric([status], count)
        yield from (by_status, info, progress, written)

    def _alerts(self):
        try:
            alert = apps.get_model("alerting", "Alert")
        except LookupError:
            return
        family = _gauge("boom_alerts", "Alerts by state and severity.", ["state", "severity"])
        for state, severity, count in (alert.objects.values_list("state", "severity").annotate(n=Count("id"))
                                       .order_by("state", "severity")):
            family.add_metric([state, severity], count)
        yield family


class _PrometheusText(BaseRenderer):
    media_type = "text/plain"
    format = "prometheus"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else str(data).encode()


def exposition() -> bytes:
    """The exposition text of the whole cluster."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsoleCollector())
    return generate_latest(registry)


@extend_schema(exclude=True)  # Prometheus text, not part of the REST API (documented in docs/telemetry.md)
@api_view(["GET"])
@authentication_classes([HashedTokenAuthentication, SessionAuthentication])
@permission_classes([AllowAny])
@renderer_classes([_PrometheusText])
def metrics(request):
    """Prometheus text exposition (see the module docstring); viewer role unless CONSOLE_METRICS_PUBLIC."""
    if not settings.CONSOLE_METRICS_PUBLIC and not has_role(request.user, VIEWER):
        status = 403 if request.user.is_authenticated else 401
        return HttpResponse("authentication required: Authorization: Token <key> of a viewer\n", status=status,
                            content_type="text/plain", headers={"WWW-Authenticate": "Token"} if status == 401 else {})
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)

"""The gateway's Prometheus families, served at ``/metrics`` on the gateway port.

One registry per application (tests run several in one process); ``model`` is the name the request
resolved to, or ``""`` for a name that resolved to nothing (clients cannot grow the label set).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("boom_gateway_requests", "Requests answered by the gateway, by status code.",
                                ["code", "model"], registry=self.registry)
        self.duration = Histogram("boom_gateway_request_duration_seconds",
                                  "Time from a request's arrival to the end of its answer.", ["model"],
                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        self.ttft = Histogram("boom_gateway_ttft_seconds", "Time to the first streamed chunk sent to the client.",
                              ["model"], buckets=TTFT_BUCKETS, registry=self.registry)

    def observe(self, code: int, model: str, duration_s: float, ttft_s: float | None) -> None:
        self.requests.labels(str(code), model).inc()
        self.duration.labels(model).observe(duration_s)
        if ttft_s is not None:
            self.ttft.labels(model).observe(ttft_s)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

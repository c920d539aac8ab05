"""The job page's live charts (drawn by console.core.charts.page_config)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from console.core.charts import Chart, Trace


def job_charts(job) -> list[Chart]:
    """The job page: tokens/s, TTFT p50 and p99, running and waiting requests, KV-cache usage."""
    flt = {"job": job.pk}

    def chart(chart_id, title, unit, pairs, y_max=None):
        return Chart(chart_id, title, unit, [Trace(s, flt, name) for s, name in pairs], [(s, flt) for s, _ in pairs],
                     y_max=y_max)

    return [
        chart("job-tokens", _("Tokens per second"), "tokens/s",
              [("job.output_tokens_per_s", _("output")), ("job.prompt_tokens_per_s", _("prompt"))]),
        chart("job-ttft", _("Time to first token"), "ms",
              [("job.ttft_p50_ms", "p50"), ("job.ttft_p99_ms", "p99")]),
        chart("job-queue", _("Requests"), _("requests"),
              [("job.requests_running", _("running")), ("job.requests_waiting", _("waiting"))]),
        chart("job-kv", _("KV-cache usage"), "%", [("job.kv_cache_usage_percent", _("KV cache"))], y_max=100),
    ]

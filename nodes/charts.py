"""The node page's live charts (drawn by console.core.charts.page_config)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from console.core.charts import Chart, Trace


def accelerator_names(accelerators) -> dict[str, str]:
    """Legend names by accelerator id: ``{"17": "GPU 0", "25": "NPU 3"}`` (kind and index on its node)."""
    return {str(a.pk): f"{a.get_kind_display()} {a.index}" for a in accelerators}


def node_charts(node, accelerators) -> list[Chart]:
    """The node page: its CPU and memory, and one trace per present accelerator for each accelerator
    series (``accelerators``: all of the node's, so that one that comes back is named)."""
    flt = {"node": node.pk}
    names = accelerator_names(accelerators)
    charts = [Chart("node-cpu", _("CPU and memory"), "%",
                    [Trace("node.cpu_percent", flt, _("CPU")), Trace("node.memory_percent", flt, _("memory"))],
                    [("node.cpu_percent", flt), ("node.memory_percent", flt)], y_max=100)]
    for series_name, title, unit, y_max in (
            ("accelerator.utilization_percent", _("Accelerator utilisation"), "%", 100),
            ("accelerator.memory_percent", _("Accelerator memory used"), "%", 100),
            ("accelerator.temperature_c", _("Accelerator temperature"), "°C", None),
            ("accelerator.power_w", _("Accelerator power"), "W", None)):
        traces = [Trace(series_name, {"accelerator": a.pk}, names[str(a.pk)]) for a in accelerators if a.present]
        charts.append(Chart(f"acc-{series_name.split('.')[1]}", title, unit, traces, [(series_name, flt)],
                            dynamic=True, name_label="accelerator", names=names, y_max=y_max))
    return charts

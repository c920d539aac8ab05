"""The built-in rules: one per built-in kind, enabled by default, created by a migration and re-created
by :func:`ensure_builtin_rules` if missing. Operators may disable or tune them; they cannot delete them."""

from __future__ import annotations

from console.alerting.choices import Comparator, RuleKind, Severity
from console.alerting.models import AlertRule

BUILTIN_RULES: list[dict] = [
    {
        "kind": RuleKind.NODE_UNREACHABLE, "name": "Node unreachable", "severity": Severity.CRITICAL,
        "for_seconds": 30, "comparator": Comparator.GT, "threshold": 0,
        "summary_template": "Node {{ labels.node_name }} is unreachable",
        "description_template": "The console cannot reach or log in to {{ labels.node_name }}: {{ detail }}",
    },
    {
        "kind": RuleKind.ACCELERATOR_HEALTH, "name": "Accelerator unhealthy", "severity": Severity.WARNING,
        "for_seconds": 30, "comparator": Comparator.GT, "threshold": 0,
        "summary_template": "Accelerator {{ labels.vendor }}{{ labels.index }} of {{ labels.node_name }} "
                            "reports health {{ labels.health }}",
        "description_template": "The last probe of {{ labels.node_name }} saw {{ labels.vendor }} accelerator "
                                "{{ labels.index }} in health {{ labels.health }}.",
    },
    {
        "kind": RuleKind.INSTANCE_CRASH_LOOP, "name": "Instance crash loop", "severity": Severity.CRITICAL,
        "for_seconds": 0, "comparator": Comparator.GE, "threshold": 3, "window_seconds": 600,
        "summary_template": "{{ entity }} restarted {{ value }} times in 10 minutes",
        "description_template": "Replica {{ labels.replica }} of job {{ labels.job_name }} keeps crashing "
                                "(on {{ labels.node_name }}). Last exit: {{ detail }}",
    },
    {
        "kind": RuleKind.JOB_DEGRADED, "name": "Job degraded", "severity": Severity.WARNING,
        "for_seconds": 60, "comparator": Comparator.GT, "threshold": 0,
        "summary_template": "Job {{ labels.job_name }} is {{ labels.state }}",
        "description_template": "Job {{ labels.job_name }} should be running but is {{ labels.state }}: {{ detail }}",
    },
    {
        "kind": RuleKind.PROBE_FAILING, "name": "Probe failing", "severity": Severity.WARNING,
        "for_seconds": 120, "comparator": Comparator.GT, "threshold": 0,
        "summary_template": "Probing {{ labels.node_name }} fails",
        "description_template": "The probe of {{ labels.node_name }} reports: {{ detail }}",
    },
    {
        "kind": RuleKind.DISK_NEARLY_FULL, "name": "Disk nearly full", "severity": Severity.WARNING,
        "for_seconds": 300, "comparator": Comparator.GE, "threshold": 90,
        "summary_template": "{{ labels.mount }} on {{ labels.node_name }} is {{ value }} % full",
        "description_template": "{{ detail }}",
    },
    {
        "kind": RuleKind.MODEL_COPY_FAILED, "name": "Model copy failed", "severity": Severity.WARNING,
        "for_seconds": 0, "comparator": Comparator.GT, "threshold": 0,
        "summary_template": "The copy of {{ labels.model_name }}:{{ labels.version_name }} on "
                            "{{ labels.node_name }} failed",
        "description_template": "{{ detail }}",
    },
]


def create_missing(rule_model) -> int:
    """Create the built-in rules that do not exist (by kind). ``rule_model`` is the model class, so that
    migrations can pass their historical one. Returns how many were created."""
    existing = set(rule_model.objects.filter(builtin=True).values_list("kind", flat=True))
    taken = set(rule_model.objects.values_list("name", flat=True))
    created = 0
    for definition in BUILTIN_RULES:
        if definition["kind"] in existing:
            continue
        values = dict(definition, builtin=True, enabled=True)
        name = values["name"]
        while name in taken:  # an operator's rule took the name: keep theirs
            name = f"{name} (built-in)"
        values["name"] = name
        rule_model.objects.create(**values)
        created += 1
    return created


def ensure_builtin_rules() -> int:
    """Re-create any missing built-in rule (one query when none is missing)."""
    if AlertRule.objects.filter(builtin=True).count() >= len(BUILTIN_RULES):
        return 0
    return create_missing(AlertRule)

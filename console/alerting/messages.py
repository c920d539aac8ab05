"""What the alerting system writes, in the reader's language: the names of the built-in rules, the
summaries and descriptions their templates render (registered in console.core.messages with the labels
and variables as parameters, so that a stored English summary renders in Chinese), and the reasons of
alert transitions. A tuned template (an operator's own words) is shown as written."""

from __future__ import annotations

import re

from django.utils.translation import gettext, gettext_noop

from console.alerting.builtin import BUILTIN_RULES
from console.core import messages

#: The names the built-in rules are created with (an operator may rename them: then the name is theirs).
BUILTIN_NAMES = {
    "Node unreachable": gettext_noop("Node unreachable"),
    "Accelerator unhealthy": gettext_noop("Accelerator unhealthy"),
    "Instance crash loop": gettext_noop("Instance crash loop"),
    "Job degraded": gettext_noop("Job degraded"),
    "Probe failing": gettext_noop("Probe failing"),
    "Disk nearly full": gettext_noop("Disk nearly full"),
    "Model copy failed": gettext_noop("Model copy failed"),
}

#: The built-in templates with ``{{ labels.x }}`` / ``{{ x }}`` written as ``%(x)s`` (tests check that they
#: are the templates of console.alerting.builtin, converted).
MESSAGES = {
    "alert.node_unreachable.summary": gettext_noop("Node %(node_name)s is unreachable"),
    "alert.node_unreachable.description": gettext_noop(
        "The console cannot reach or log in to %(node_name)s: %(detail)s"),
    "alert.accelerator_health.summary": gettext_noop(
        "Accelerator %(vendor)s%(index)s of %(node_name)s reports health %(health)s"),
    "alert.accelerator_health.description": gettext_noop(
        "The last probe of %(node_name)s saw %(vendor)s accelerator %(index)s in health %(health)s."),
    "alert.instance_crash_loop.summary": gettext_noop("%(entity)s restarted %(value)s times in 10 minutes"),
    "alert.instance_crash_loop.description": gettext_noop(
        "Replica %(replica)s of job %(job_name)s keeps crashing (on %(node_name)s). Last exit: %(detail)s"),
    "alert.job_degraded.summary": gettext_noop("Job %(job_name)s is %(state)s"),
    "alert.job_degraded.description": gettext_noop(
        "Job %(job_name)s should be running but is %(state)s: %(detail)s"),
    "alert.probe_failing.summary": gettext_noop("Probing %(node_name)s fails"),
    "alert.probe_failing.description": gettext_noop("The probe of %(node_name)s reports: %(detail)s"),
    "alert.disk_nearly_full.summary": gettext_noop("%(mount)s on %(node_name)s is %(value)s %% full"),
    "alert.model_copy_failed.summary": gettext_noop(
        "The copy of %(model_name)s:%(version_name)s on %(node_name)s failed"),
    # The reasons of alert transitions (console.alerting.evaluator, services).
    "alert.condition_true": gettext_noop("condition true"),
    "alert.condition_cleared_early": gettext_noop("condition cleared before the for-duration"),
    "alert.condition_cleared": gettext_noop("condition cleared"),
    "alert.condition_held": gettext_noop("condition held for the for-duration"),
    "alert.rule_gone": gettext_noop("rule disabled or deleted"),
}

_EXPRESSION = re.compile(r"\{\{\s*\$?(?:labels\.)?(\w+)\s*\}\}")


def as_message_template(template: str) -> str:
    """A rule template (``{{ labels.node_name }}``) as a message template (``%(node_name)s``)."""
    return _EXPRESSION.sub(r"%(\1)s", template.replace("%", "%%"))


def rule_name(name: str) -> str:
    """A rule's name for the page: a built-in rule's own name in the reader's language."""
    return gettext(BUILTIN_NAMES[name]) if name in BUILTIN_NAMES else name


def builtin_templates() -> dict[str, str]:
    """``{code: converted template}`` of every built-in template (what MESSAGES must contain)."""
    out = {}
    for definition in BUILTIN_RULES:
        for part in ("summary", "description"):
            template = definition.get(f"{part}_template")
            if template and template != "{{ detail }}":
                out[f"alert.{definition['kind']}.{part}"] = as_message_template(template)
    return out


def register() -> None:
    messages.register(MESSAGES)

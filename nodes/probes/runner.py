"""Run the probe script on a node, over its transport, and return typed data.

Never raises for an unreachable node: unreachability is data (STYLE.md section 5).
"""

import time
from dataclasses import dataclass, field

from django.conf import settings

from nodes.probes.result import ProbeResult, parse_probe_output
from nodes.probes.script import PROBE_SCRIPT
from nodes.transports import NodeCommandError, transport_for
from nodes.transports.ssh import HostKeyMismatch


@dataclass
class ProbeOutcome:
    reachable: bool
    result: ProbeResult | None = None
    error: str = ""                      # why the node could not be probed
    host_key: str | None = None          # the SSH host key the node presented ("type base64")
    host_key_mismatch: bool = False
    duration_ms: int = 0
    warnings: list[str] = field(default_factory=list)


def run_probe(node) -> ProbeOutcome:
    """Probe one node: the probe script on ``bash -s``, through the node's transport."""
    timeout = float(settings.CONSOLE_SSH_COMMAND_TIMEOUT_S)
    started = time.monotonic()
    try:
        outcome = transport_for(node).run("bash -s", stdin=PROBE_SCRIPT, timeout=timeout)
    except HostKeyMismatch as exc:
        return ProbeOutcome(False, error=exc.reason, host_key_mismatch=True, duration_ms=_ms(started))
    except NodeCommandError as exc:
        return ProbeOutcome(False, error=exc.reason, duration_ms=_ms(started))
    result = parse_probe_output(outcome.stdout)
    code = outcome.exit_code
    warnings = [] if code == 0 else [f"the probe script exited with status {code}"]
    return ProbeOutcome(True, result=result, host_key=outcome.host_key or None, duration_ms=_ms(started),
                        warnings=warnings)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

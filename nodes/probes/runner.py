"""Run the probe script on a node, locally or over SSH, and return typed data.

Never raises for an unreachable node: unreachability is data (STYLE.md section 5).
"""

import subprocess
import time
from dataclasses import dataclass, field

from django.conf import settings

from nodes.crypto import SecretBoxError
from nodes.probes.result import ProbeResult, parse_probe_output
from nodes.probes.script import PROBE_SCRIPT


@dataclass
class ProbeOutcome:
    reachable: bool
    result: ProbeResult | None = None
    error: str = ""                      # why the node could not be probed
    host_key: str | None = None          # the SSH host key the node presented ("type base64")
    host_key_mismatch: bool = False
    duration_ms: int = 0
    warnings: list[str] = field(default_factory=list)


def ssh_target(node):
    """The SSHTarget for a node (decrypts its credential's key in memory only)."""
    from nodes.probes.ssh import SSHTarget

    credential = node.credential
    return SSHTarget(
        host=node.address,
        port=node.ssh_port,
        username=node.effective_ssh_user,
        private_key=credential.private_key() if credential else "",
        passphrase=None,
        pinned_host_key=node.host_key or None,
        connect_timeout=float(settings.CONSOLE_SSH_CONNECT_TIMEOUT_S),
        key_id=f"{credential.pk}:{credential.updated_at.timestamp()}" if credential else "",
    )


def run_probe(node) -> ProbeOutcome:
    """Probe one node. Local nodes run the script in a subprocess; SSH nodes over the pooled connection."""
    from nodes.probes.ssh import POOL, HostKeyMismatch, SSHError

    timeout = float(settings.CONSOLE_SSH_COMMAND_TIMEOUT_S)
    started = time.monotonic()
    host_key = None
    try:
        if node.transport == "local":
            completed = subprocess.run(["bash", "-s"], input=PROBE_SCRIPT, capture_output=True, text=True,
                                       timeout=timeout, check=False)
            stdout, code = completed.stdout, completed.returncode
        else:
            if node.credential_id is None:
                return ProbeOutcome(False, error="no SSH credential is set for this node")
            outcome = POOL.run(ssh_target(node), "bash -s", stdin=PROBE_SCRIPT, timeout=timeout)
            stdout, code, host_key = outcome.stdout, outcome.exit_code, outcome.host_key
    except SecretBoxError:
        return ProbeOutcome(False, error="the SSH key of this node's credential cannot be decrypted: the console's "
                            "secret changed (set CONSOLE_OLD_SECRET_KEYS, or store the key again)",
                            duration_ms=_ms(started))
    except HostKeyMismatch as exc:
        return ProbeOutcome(False, error=exc.reason, host_key_mismatch=True, duration_ms=_ms(started))
    except SSHError as exc:
        return ProbeOutcome(False, error=exc.reason, duration_ms=_ms(started))
    except subprocess.TimeoutExpired:
        return ProbeOutcome(False, error=f"the probe did not finish within {timeout:.0f} s",
                            duration_ms=_ms(started))
    except OSError as exc:
        return ProbeOutcome(False, error=f"the probe could not run: {exc}", duration_ms=_ms(started))
    result = parse_probe_output(stdout)
    warnings = [] if code == 0 else [f"the probe script exited with status {code}"]
    return ProbeOutcome(True, result=result, host_key=host_key, duration_ms=_ms(started), warnings=warnings)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

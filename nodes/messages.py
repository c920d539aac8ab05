"""The sentences the inventory records (a node's status detail, probe errors, transport failures),
registered in console.core.messages so that pages render them in the reader's language. Each template
is the exact English the code writes."""

from django.utils.translation import gettext_noop

from console.core import messages

MESSAGES = {
    "node.maintenance_set": gettext_noop("set by an operator"),
    "node.maintenance_ended": gettext_noop("maintenance ended"),
    "node.host_key_changed": gettext_noop("host key changed, connection refused: %(error)s"),
    "node.unhealthy_accelerators": gettext_noop("unhealthy accelerators: %(accelerator_health)s"),
    "node.missing_accelerators": gettext_noop("accelerators missing: %(accelerators)s"),
    "node.no_probe_result": gettext_noop("no probe result for %(seconds)s s (the prober may be down)"),
    "probe.cut_short": gettext_noop("the probe output was cut short (no end marker): results may be incomplete"),
    "probe.unparsed": gettext_noop("%(tool)s: output could not be parsed (%(error)s)"),
    "transport.no_credential": gettext_noop("no SSH credential is set for this node"),
    "transport.no_home": gettext_noop("the node did not say where the login's home directory ($HOME) is"),
    "transport.timeout": gettext_noop("the command did not finish within %(seconds)s s"),
    "transport.cannot_run": gettext_noop("the command could not run: %(error)s"),
    "ssh.refused": gettext_noop("connection to %(where)s refused (is sshd running on that port?)"),
    "ssh.timed_out": gettext_noop("connection to %(where)s timed out after %(seconds)s s"),
    "ssh.cannot_connect": gettext_noop("cannot connect to %(where)s: %(error)s"),
    "ssh.cannot_resolve": gettext_noop("cannot resolve %(host)s: %(error)s"),
    "ssh.auth_failed": gettext_noop("connection to %(where)s failed during authentication: %(error)s"),
    "ssh.bad_key": gettext_noop("the SSH key for %(where)s cannot be used: %(error)s"),
}


def register() -> None:
    messages.register(MESSAGES)

"""Transports: how the console reaches a node, one module per kind, and the registry of them.

``TRANSPORTS`` maps a node's ``transport`` field to its class; :func:`transport_for` gives a node's
transport. Everything that runs something on a node goes through it: the probe, the executor, model
inspection and checksum verification. See :mod:`.base` for what a transport does and answers.

Adding a kind: a module with a :class:`~nodes.transports.base.Transport` subclass, a line in
``TRANSPORTS``, and a choice in ``nodes.choices.Transport``.
"""

from nodes.transports.base import CommandResult, NodeCommandError, Pipe, Transport, command_text, quote_argv
from nodes.transports.local import LocalTransport
from nodes.transports.ssh import SSHTransport

TRANSPORTS: dict[str, type[Transport]] = {
    "local": LocalTransport,
    "ssh": SSHTransport,
}


class UnknownTransport(NodeCommandError, ValueError):
    """A node whose ``transport`` names no class in :data:`TRANSPORTS`."""


def transport_for(node) -> Transport:
    """The transport that reaches ``node``; :class:`UnknownTransport` for a kind the console does not know."""
    cls = TRANSPORTS.get(node.transport)
    if cls is None:
        raise UnknownTransport(
            f"node {node.name!r} has transport {node.transport!r}, which this console does not know "
            f"(known: {', '.join(TRANSPORTS)})"
        )
    return cls.for_node(node)


__all__ = [
    "TRANSPORTS",
    "CommandResult",
    "LocalTransport",
    "NodeCommandError",
    "Pipe",
    "SSHTransport",
    "Transport",
    "UnknownTransport",
    "command_text",
    "quote_argv",
    "transport_for",
]

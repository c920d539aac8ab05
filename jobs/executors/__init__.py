"""The executor: where and how an engine process runs on a node, over the node's transport.

One :class:`Executor` drives one launcher script (``launcher.sh``, with ``supervise.sh``) through a
transport of ``nodes.transports``: the console's own machine and SSH nodes differ only there. For a
node, ``jobs.runtime.executor_for(node)`` builds it through the transport registry::

    Executor(transport_for(node), timeout_s=...)

See ``base.py`` for the operations and ``launcher.py`` for what runs on the node.
"""

from .base import *  # noqa: F403 (the package's names are base's: its __all__)
from .base import __all__  # noqa: F401

"""Alerting: rules over telemetry series and cluster state, alerts with an explicit lifecycle,
grouping, silences, acknowledgements, inhibition, and notification channels behind an outbox.

Modules: ``choices`` (states and their transition table), ``models``, ``labels`` (fingerprints,
matchers), ``templating`` (summary/description templates), ``builtin`` (the built-in rules),
``evaluator`` (one evaluation cycle), ``dispatch`` (grouping, the outbox, delivery), ``services``
(operator actions), ``notifiers/`` (one module per channel kind), ``tasks``, ``api/`` and the pages.
See docs/alerting.md.
"""

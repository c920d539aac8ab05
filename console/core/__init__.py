"""The foundation every app stands on. It imports no domain app (nodes, models_registry, jobs) and
nothing of the console's own top floor (alerting, dashboards, telemetry); import-linter checks it.

audit (+ the Event model), api (base viewsets, the one conflict -> 409 mapping, OpenAPI errors),
permissions (roles), env (settings readers), broadcast (live streams), middleware, locks and the
state-machine helper with its abstract history model.
"""

"""Celery tasks of the console app. Autodiscovery imports this module; the tasks live with their
feature (console/telemetry/tasks.py) and are imported here so that the worker registers them."""

from console.telemetry.tasks import rollup_and_prune  # noqa: F401

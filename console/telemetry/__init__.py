"""Telemetry that spans domains: the series registry and queries (series.py), the collector process
(collector.py, sources.py), rollups and retention (retention.py, tasks.py) and the REST views (api.py).
Node and accelerator samples live in nodes.models, job and instance samples in jobs.models."""

"""Serving benchmarks: concurrency sweeps against a job or an OpenAI-compatible endpoint.

generator.py (the asyncio load generator, no Django), runner.py (drives it from a worker thread),
services.py (create, run, cancel, the status transitions), tasks.py (the Celery task, queue ``long``),
export.py (CSV and JSON). See docs/benchmarks-serving.md.
"""

"""Serving benchmarks: concurrency sweeps against a job or an OpenAI-compatible endpoint.

One package: generator.py (the asyncio load generator, no Django), runner.py (drives it from a
worker thread), services.py (create, run, cancel, the status transitions), tasks.py (the Celery
task, queue ``long``), export.py (CSV and JSON), charts.py (figures), api.py (serializer and
viewset, registered in jobs/api/urls.py), forms.py and views.py (the pages), urls.py (page routes,
mounted by jobs/urls.py). See docs/benchmarks-serving.md.
"""

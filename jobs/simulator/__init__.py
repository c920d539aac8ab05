"""The simulator engine: an OpenAI-compatible server with vLLM's metrics and a load-dependent pace.

Run it with ``python -m jobs.simulator``. server.py holds the engine (state, routes, load model,
serve), protocol.py the OpenAI wire format, metrics.py the vLLM series, config.py the settings and
the command line. This package imports nothing, so Django code may import it without pulling in aiohttp.
"""

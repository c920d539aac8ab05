"""The simulator engine: an OpenAI-compatible server with vLLM's metrics and a load-dependent pace.

Run it with ``python -m jobs.simulator``; the server lives in :mod:`jobs.simulator.server`. This
package imports nothing, so Django code may import it without pulling in aiohttp.
"""

"""The inference front door (issue 11): an asyncio server, separate from Django's request path, that
routes OpenAI-compatible requests to ready instances, with API keys, limits and usage.

models.py   ApiKey, Route (+ RouteTarget), UsageMinute: the gateway's tables (app "jobs")
keys.py     key generation and hashing (``bk-`` + random; only a SHA-256 digest is stored)
"""

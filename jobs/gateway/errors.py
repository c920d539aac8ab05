"""Errors in OpenAI's shape: ``{"error": {"message", "type", "code"}}``, with the status each one has.

Every answer the gateway makes up itself goes through :func:`error_response`; what an engine answers
is passed through as the engine wrote it.
"""

from __future__ import annotations

import json

from aiohttp import web

# status -> OpenAI's error type
TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "api_error",
    504: "api_error",
}


class GatewayError(Exception):
    """An answer the gateway gives instead of forwarding: raised anywhere on the request path."""

    def __init__(self, status: int, message: str, code: str, *, retry_after: int | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after
        self.param = param

    @property
    def kind(self) -> str:
        """How usage counts it (``errors_by_kind``)."""
        return f"http_{self.status}"


def error_body(message: str, code: str, status: int, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "api_error"), "param": param, "code": code}}


def error_response(error: GatewayError) -> web.Response:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return web.Response(status=error.status, headers=headers, content_type="application/json",
                        text=json.dumps(error_body(error.message, error.code, error.status, error.param)))


def sse_error_event(message: str, code: str, status: int = 502) -> bytes:
    """The event that ends a stream broken after bytes reached the client."""
    return f"data: {json.dumps(error_body(message, code, status))}\n\n".encode()

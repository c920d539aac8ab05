"""The simulator's OpenAI wire format: token estimates, error bodies, usage objects, JSON in and out.

Pure helpers of :mod:`jobs.simulator.server` (aiohttp only for the request and response types).
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

VOCABULARY: tuple[str, ...] = (
    "the", "model", "serves", "tokens", "from", "a", "cluster", "of", "accelerators", "and",
    "every", "node", "reports", "its", "health", "while", "requests", "wait", "in", "queue",
    "latency", "grows", "with", "load", "so", "operators", "watch", "throughput", "cache", "memory",
    "batch", "prefill", "decode", "stream", "engine", "replica", "restarts", "after", "crash", "on",
    "another", "server", "quickly", "inference", "is", "steady", "today", "weights", "are", "loaded",
    "context", "window", "holds", "the", "prompt", "answer", "follows", "here", "simply", "well",
    "metrics", "show", "it", "clearly",
)  # fmt: skip

CHARS_PER_TOKEN = 4
TOKENS_PER_CHAT_MESSAGE = 3
NATURAL_LENGTH_RANGE = (16, 384)
DEFAULT_COMPLETION_MAX_TOKENS = 16


def dumps(value: Any) -> str:
    """Compact JSON, as vLLM writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class RequestError(Exception):
    """A bad request, answered with an OpenAI-style error body."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param

    def response(self) -> web.Response:
        """The error as vLLM shapes it."""
        kind = {400: "BadRequestError", 404: "NotFoundError", 503: "ServiceUnavailableError"}
        body = {
            "object": "error",
            "message": self.message,
            "type": kind.get(self.status, "Error"),
            "param": self.param,
            "code": self.status,
        }
        return web.json_response(body, status=self.status, dumps=dumps)


def estimate_prompt_tokens(prompt: Any) -> int:
    """Estimate the token count of a completion prompt or a list of chat messages.

    Text counts ``ceil(len / 4)`` tokens (at least 1); a list of ints is token ids already; a list
    of chat messages counts each message's text plus 3 tokens of chat template.
    """
    if isinstance(prompt, str):
        return max(1, math.ceil(len(prompt) / CHARS_PER_TOKEN))
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        return sum(math.ceil(len(message_text(m)) / CHARS_PER_TOKEN) + TOKENS_PER_CHAT_MESSAGE for m in prompt)
    raise RequestError(400, "prompt must be a string or a list of token ids", "prompt")


def message_text(message: dict) -> str:
    """The text of one chat message: a string, or the text parts of a content list."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    raise RequestError(400, "message content must be a string or a list of parts", "messages")



def token_usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }


async def json_body(request: web.Request) -> dict:
    """The request's JSON object, or a 400."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object")
    return body

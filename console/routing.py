"""Websocket routes, and the ``?token=`` authentication of scripts' stream connections."""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.urls import path

from console.consumers import StreamConsumer


@database_sync_to_async
def _token_user(key: str):
    from console.core.tokens import user_for_key

    return user_for_key(key)


class TokenQueryAuthMiddleware:
    """``/ws/stream/?token=<key>`` authenticates as the token's user (stored hashed: console.core.tokens),
    for clients without a browser session. Goes inside AuthMiddlewareStack: a token, when given, wins; a wrong
    token makes the connection anonymous rather than falling back to the session."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        keys = query.get("token")
        if keys:
            from django.contrib.auth.models import AnonymousUser

            user = await _token_user(keys[0][:64])
            scope = dict(scope, user=user or AnonymousUser())
        return await self.inner(scope, receive, send)


websocket_urlpatterns: list = [
    path("ws/stream/", TokenQueryAuthMiddleware(StreamConsumer.as_asgi())),
]

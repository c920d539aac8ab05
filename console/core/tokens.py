"""API tokens stored hashed (issue 13, deliverable 3; docs/security.md).

``HashedTokenAuthentication`` keeps DRF's header, ``Authorization: Token <key>``, and looks the key up by
its SHA-256 digest (``console.core.models.ApiToken``). ``user_for_key`` serves the websocket's ``?token=``.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from console.core.models import ApiToken, token_digest

MAX_KEY_LENGTH = 128


def user_for_key(key: str):
    """The active user whose token ``key`` is, or None."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    token = ApiToken.objects.select_related("user").filter(digest=token_digest(key)).first()
    return token.user if token is not None and token.user.is_active else None


class HashedTokenAuthentication(TokenAuthentication):
    keyword = "Token"
    model = ApiToken

    def authenticate_credentials(self, key):
        if len(key) > MAX_KEY_LENGTH:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token = ApiToken.objects.select_related("user").filter(digest=token_digest(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token

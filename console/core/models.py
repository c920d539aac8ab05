"""Foundation models: the audit and event log, and the outbox of the live streams.

They belong to the ``console`` app (app_label), so their tables and migrations stay where they are."""

import json

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Event(models.Model):
    """One thing that happened: an operator's mutating action or a state transition.

    Append-only. ``actor`` is the username, or ``system`` for the console's own work,
    kept as text so that events outlive deleted users.
    """

    time = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    actor = models.CharField(_("actor"), max_length=150)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    verb = models.CharField(_("verb"), max_length=64)
    object_type = models.CharField(_("object type"), max_length=64)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    object_repr = models.CharField(_("object"), max_length=200, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    source_address = models.GenericIPAddressField(_("source address"), null=True, blank=True)

    class Meta:
        app_label = "console"
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id", "-time"])]
        verbose_name = _("event")
        verbose_name_plural = _("events")

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor} {self.verb} {self.object_type}:{self.object_id}"


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # one encoder: json.dumps makes one a call with separators


def dump_json(value) -> str:
    """Compact JSON text (no spaces after separators): what :class:`JSONTextField` stores."""
    return _COMPACT.encode(value)


class JSONTextField(models.TextField):
    """JSON kept as plain text: a Python value in and out, like ``JSONField``, but the database stores and
    returns the text as it was written, never parsing it. For JSON that is only ever read back whole (no
    lookups into it): on PostgreSQL a ``jsonb`` column parses every value on insert into a binary form
    that is larger than the text (numbers become ``numeric``), which at 1000 nodes was most of the cost
    of writing the live streams' entries."""

    description = "JSON stored as text"

    def from_db_value(self, value, expression, connection):
        return None if value is None else json.loads(value)

    def to_python(self, value):
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def get_prep_value(self, value):
        return None if value is None else dump_json(value)

    def value_to_string(self, obj):
        return dump_json(self.value_from_object(obj))


class StreamEntry(models.Model):
    """One message of a live stream topic (``cluster``, ``node:<id>``, ``job:<id>``, ``alerts``).

    The outbox of the websocket streams (console.core.broadcast writes it, console.consumers reads it):
    the id is the cursor a browser sends back after a reconnect to receive what it missed, and in
    the embedded profile (no Redis) the web server polls this table instead of a channel layer.
    Kept for CONSOLE_STREAM_RETENTION_S; older cursors get a ``reset`` and reload from the series API.
    """

    time = models.DateTimeField(default=timezone.now)
    topic = models.CharField(max_length=64)
    # Text, not jsonb: written at every flush of the collector (1000 topics a second at 1000 nodes), read
    # back whole by the consumers, never queried into.
    payload = JSONTextField(default=dict)

    class Meta:
        app_label = "console"
        indexes = [models.Index(fields=["time"], name="streamentry_time")]

    def __str__(self):
        return f"{self.pk} {self.topic}"


class StreamWatch(models.Model):
    """A live topic someone watches, until ``until`` (console.streams.watch, refreshed while a connection
    is subscribed). The collector publishes a node's samples (``node:<id>``) only while its topic is
    watched: at 1000 nodes, entries nobody reads would be most of what a flush writes."""

    topic = models.CharField(max_length=64, primary_key=True)
    until = models.DateTimeField()

    class Meta:
        app_label = "console"

    def __str__(self):
        return f"{self.topic} until {self.until:%H:%M:%S}"


class TransitionRecord(models.Model):
    """One status change of a stateful object: the shape of every history table (abstract).

    A concrete history adds the foreign key to its object (named by ``subject``) and its
    ``from_<field>`` / ``to_<field>`` columns, with the choices of its own state machine
    (``field`` is ``status`` or ``state``). Rows are written by console.core.statemachine.transition.
    """

    #: The name of the foreign key to the object whose status changed (``node``, ``version``, ...).
    subject = ""
    #: The state field of that object: the history's columns are ``from_<field>`` and ``to_<field>``.
    field = "status"

    time = models.DateTimeField(default=timezone.now)
    reason = models.TextField(blank=True)
    actor = models.CharField(max_length=150, default="system")

    class Meta:
        abstract = True
        ordering = ["-time", "-id"]

    def __str__(self):
        return (f"{getattr(self, f'{self.subject}_id', '?')}: {getattr(self, f'from_{self.field}') or 'new'} -> "
                f"{getattr(self, f'to_{self.field}')}")


def token_digest(key: str) -> str:
    """The SHA-256 hex digest under which an API token is stored (the key itself never is)."""
    import hashlib

    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class ApiTokenManager(models.Manager):
    def create(self, user, key: str | None = None, **fields):
        """A new token for ``user``; the returned object carries the key in ``.key`` (not stored: only
        its digest and first 8 characters are). A user may hold several tokens, each with a name."""
        import secrets

        key = key or secrets.token_hex(20)
        token = super().create(user=user, digest=token_digest(key), prefix=key[:8], **fields)
        token.key = key
        return token


class ApiToken(models.Model):
    """An API token (``Authorization: Token <key>``), stored as the SHA-256 digest of its key and the key's
    first 8 characters (shown in the lists). The key is shown once, when the token is created (the
    *API tokens* page, or ``manage.py drf_create_token USER``). Revoking deletes the row.
    Replaces DRF's authtoken, which stored keys as given."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="api_tokens", on_delete=models.CASCADE,
                             verbose_name=_("user"))
    name = models.CharField(_("name"), max_length=64, blank=True)
    digest = models.CharField(_("digest"), max_length=64, unique=True, editable=False)
    prefix = models.CharField(_("prefix"), max_length=8, editable=False)
    created = models.DateTimeField(_("created"), auto_now_add=True)

    objects = ApiTokenManager()

    class Meta:
        app_label = "console"
        ordering = ["user_id", "-created", "-id"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self):
        return f"{self.prefix}… ({self.user})" + (f" {self.name}" if self.name else "")

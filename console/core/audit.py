"""Writing the audit log. Every mutating API action and every state transition calls ``record``."""

from console.core.models import Event

SYSTEM = "system"


def client_address(request) -> str | None:
    """The address the request came from (the first X-Forwarded-For hop only when behind a proxy
    that the deployment trusts is out of scope here: REMOTE_ADDR is what we know for sure)."""
    if request is None:
        return None
    meta = getattr(request, "META", {})
    return meta.get("REMOTE_ADDR") or None


def record(verb: str, obj=None, *, request=None, actor: str | None = None, detail: dict | None = None,
           object_type: str | None = None, object_id=None) -> Event:
    """Append one event. ``obj`` is a model instance (its type and id are taken from it)."""
    user = getattr(request, "user", None) if request is not None else None
    if user is not None and not user.is_authenticated:
        user = None
    if actor is None:
        actor = user.get_username() if user is not None else SYSTEM
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = obj.pk if object_id is None else object_id
    return Event.objects.create(
        actor=actor,
        user=user,
        verb=verb,
        object_type=object_type or "",
        object_id="" if object_id is None else str(object_id),
        object_repr=str(obj)[:200] if obj is not None else "",
        detail=detail or {},
        source_address=client_address(request),
    )

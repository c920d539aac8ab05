"""The console side of the gateway: API keys, routes, usage. The API views and the pages call these;
the gateway process (jobs.gateway.server) only reads what they write.

Keys: ``create_key`` returns the key once, with the row that stores only its digest and prefix;
``revoke_key`` is idempotent and bumps ``updated_at`` (gateways follow it within a second).
Visibility: an admin sees every key, anyone else only their own (``visible_keys``).

Usage: rows are per gateway process and minute (``UsageMinute``); every read sums them.
``usage_report`` answers the usage API in two queries whatever the range.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from console.core import audit
from console.core.permissions import ADMIN, has_role
from jobs.gateway import keys
from jobs.gateway.models import ApiKey, Route, RouteTarget, UsageMinute

PLAYGROUND_KEY_TTL = timedelta(hours=1)
USAGE_MAX_POINTS = 11_000
USAGE_DEFAULT_RANGE = timedelta(hours=1)
USAGE_SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "latency_ms_sum", "ttft_ms_sum",
              "ttft_count")
CSV_FIELDS = ("t", "key", "model", "requests", "errors", "prompt_tokens", "completion_tokens", "latency_ms_avg",
              "ttft_ms_avg")


class UsageError(ValueError):
    """Bad usage query input; ``errors`` is ``{field: [message]}`` (a 400)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


# ----------------------------------------------------------------------------------------------- keys


def visible_keys(user):
    """The keys ``user`` may see and revoke: all for an admin, else their own."""
    qs = ApiKey.objects.select_related("owner")
    return qs if has_role(user, ADMIN) else qs.filter(owner=user)


def create_key(owner, *, name: str, models: list[str] | None = None, expires_at=None, rpm=None, tpm=None,
               max_concurrency=None, request=None, verb: str = "create") -> tuple[ApiKey, str]:
    """A new key for ``owner``: the row (digest and prefix only) and the key itself, shown once."""
    secret = keys.new_key()
    key = ApiKey.objects.create(
        name=name, models=list(models or []), expires_at=expires_at, rpm=rpm, tpm=tpm,
        max_concurrency=max_concurrency, owner=owner, digest=keys.digest(secret), prefix=keys.prefix_of(secret))
    audit.record(verb, key, request=request, detail={
        "name": name, "prefix": key.prefix, "models": key.models, "owner": owner.get_username(),
        "expires_at": expires_at.isoformat() if expires_at else None, "rpm": rpm, "tpm": tpm,
        "max_concurrency": max_concurrency})
    return key, secret


def revoke_key(key: ApiKey, *, request=None) -> ApiKey:
    """Revoke (idempotent: a revoked key stays as it is and no second event is written)."""
    if key.revoked:
        return key
    key.revoked = True
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked", "revoked_at", "updated_at"])  # updated_at: gateways reload within 1 s
    audit.record("revoke", key, request=request, detail={"prefix": key.prefix, "owner": key.owner.get_username()})
    return key


def mint_playground_key(user, model: str, *, request=None) -> tuple[ApiKey, str]:
    """A key for the playground page: scoped to one model, expiring in an hour, audited."""
    return create_key(user, name=f"playground {model}"[:100], models=[model],
                      expires_at=timezone.now() + PLAYGROUND_KEY_TTL, request=request, verb="create")


# --------------------------------------------------------------------------------------------- routes


def served_names() -> dict[str, int]:
    """Every job's served model name (``options.served_name`` or its name) -> job id."""
    return {(options or {}).get("served_name") or name: pk
            for pk, name, options in apps.get_model("jobs", "Job").objects.values_list("pk", "name", "options")}


@transaction.atomic
def save_route(route: Route | None, *, name: str, targets: list[dict[str, Any]], fallback=None,
               request=None) -> Route:
    """Create or update a route; its targets are replaced as a set, in the same transaction."""
    created = route is None
    route = route or Route()
    route.name, route.fallback = name, fallback
    route.save()
    route.targets.all().delete()
    RouteTarget.objects.bulk_create([RouteTarget(route=route, job=t["job"], weight=t["weight"]) for t in targets])
    audit.record("create" if created else "update", route, request=request, detail={
        "name": name, "fallback": fallback.pk if fallback else None,
        "targets": [{"job": t["job"].pk, "weight": t["weight"]} for t in targets]})
    return route


def delete_route(route: Route, *, request=None) -> None:
    pk, text = route.pk, str(route)
    route.delete()
    audit.record("delete", None, request=request, object_type="route", object_id=pk, detail={"name": text})


def gateway_model_names() -> list[dict[str, str]]:
    """The names a client may send as ``model``, as the gateway resolves them: routes, the served
    names of jobs, and ``<registry model>@<alias>`` for every alias. ``[{"name", "kind"}]``."""
    from models_registry.models import Alias

    out = [{"name": name, "kind": "route"} for name in Route.objects.values_list("name", flat=True)]
    out += [{"name": name, "kind": "job"} for name in sorted(served_names())]
    out += [{"name": f"{model}@{alias}", "kind": "alias"}
            for model, alias in Alias.objects.values_list("model__name", "name").order_by("model__name", "name")]
    return out


# ---------------------------------------------------------------------------------------------- usage


@dataclass(frozen=True)
class UsageQuery:
    start: datetime
    end: datetime
    step_s: int
    filters: dict[str, Any]  # ORM filters on UsageMinute


def _parse_time(value: str, field: str, errors: dict) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        errors[field] = ["must be an ISO 8601 time"]
        return None
    return parsed.replace(tzinfo=UTC) if timezone.is_naive(parsed) else parsed


def _parse_id(value: str, field: str, errors: dict) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        errors[field] = ["must be an integer id"]
        return None
    if number < 1 or number > 2**62:
        errors[field] = ["must be a positive integer id"]
        return None
    return number


def parse_usage_query(params, user) -> UsageQuery:
    """Validate ``key job route model start end step`` and apply who may see what:

    cluster-wide sums (all keys, by job, route or model) are visible to every reader; usage of one
    key (``key=``) only to its owner and admins. Raises UsageError (400) or PermissionError (403)."""
    errors: dict[str, list[str]] = {}
    now = timezone.now()
    end = _parse_time(params["end"], "end", errors) if params.get("end") else now
    start = _parse_time(params["start"], "start", errors) if params.get("start") else None
    step_s = 60
    if params.get("step"):
        try:
            step_s = int(params["step"])
        except (TypeError, ValueError):
            errors["step"] = ["must be a whole number of seconds"]
        else:
            if step_s < 60 or step_s % 60:
                errors["step"] = ["must be a positive multiple of 60 seconds"]
    filters: dict[str, Any] = {}
    for field in ("key", "job", "route"):
        if params.get(field):
            number = _parse_id(params[field], field, errors)
            if number is not None:
                filters[f"{field}_id"] = number
    if params.get("model"):
        if len(params["model"]) > 200:
            errors["model"] = ["at most 200 characters"]
        filters["model"] = params["model"]
    if errors:
        raise UsageError(errors)
    if start is None:
        start = end - USAGE_DEFAULT_RANGE
    if end <= start:
        raise UsageError({"end": ["must be after start"]})
    if end > now + timedelta(days=1):
        raise UsageError({"end": ["is more than a day in the future"]})
    start_epoch = math.floor(start.timestamp() / step_s) * step_s
    if (end.timestamp() - start_epoch) / step_s > USAGE_MAX_POINTS:
        raise UsageError({"step": [f"too many points: (end - start) / step may be at most {USAGE_MAX_POINTS}"]})
    if "key_id" in filters and not has_role(user, ADMIN):
        if not has_role(user, "operator"):
            raise PermissionError("viewers see cluster-wide usage only")
        if not ApiKey.objects.filter(pk=filters["key_id"], owner=user).exists():
            raise UsageError({"key": ["no such key of yours"]})
    return UsageQuery(datetime.fromtimestamp(start_epoch, tz=UTC), end, step_s, filters)


def _usage_rows(query: UsageQuery, *group: str, where: Q | None = None):
    return (UsageMinute.objects.filter(where or Q(), minute__gte=query.start, minute__lt=query.end, **query.filters)
            .values("minute", *group).annotate(**{f"s_{f}": Sum(f) for f in USAGE_SUMS}).order_by("minute", *group))


def _bucket(query: UsageQuery, minute: datetime) -> int:
    epoch = int(minute.timestamp())
    return epoch - (epoch - int(query.start.timestamp())) % query.step_s


def _point(t: int, sums: dict[str, float]) -> dict[str, Any]:
    requests = int(sums.get("requests", 0))
    ttft_count = int(sums.get("ttft_count", 0))
    return {
        "t": datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z"),
        "requests": requests, "errors": int(sums.get("errors", 0)),
        "prompt_tokens": int(sums.get("prompt_tokens", 0)), "completion_tokens": int(sums.get("completion_tokens", 0)),
        "latency_ms_avg": round(sums.get("latency_ms_sum", 0) / requests, 3) if requests else None,
        "ttft_ms_avg": round(sums.get("ttft_ms_sum", 0) / ttft_count, 3) if ttft_count else None,
    }


def _bucket_starts(query: UsageQuery) -> range:
    return range(int(query.start.timestamp()), math.ceil(query.end.timestamp()), query.step_s)


def usage_report(query: UsageQuery) -> dict[str, Any]:
    """``{"points": [...], "totals": {...}, "errors_by_kind": {...}, "start", "end", "step"}``: every
    bucket of the range (zeros where nothing was served), summed over gateway processes. Two queries."""
    buckets: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    totals: dict[str, float] = defaultdict(float)
    for row in _usage_rows(query):
        sums = buckets[_bucket(query, row["minute"])]
        for field in USAGE_SUMS:
            value = row[f"s_{field}"] or 0
            sums[field] += value
            totals[field] += value
    kinds: dict[str, int] = defaultdict(int)
    for by_kind in (UsageMinute.objects.filter(minute__gte=query.start, minute__lt=query.end, errors__gt=0,
                                               **query.filters).values_list("errors_by_kind", flat=True)):
        for kind, count in (by_kind or {}).items():
            if isinstance(count, int | float):
                kinds[str(kind)] += int(count)
    points = [_point(t, buckets.get(t, {})) for t in _bucket_starts(query)]
    total = _point(int(query.start.timestamp()), totals)
    total.pop("t")
    return {"start": points[0]["t"] if points else None, "end": query.end.isoformat(), "step": query.step_s,
            "points": points, "totals": total, "errors_by_kind": dict(sorted(kinds.items()))}


def usage_breakdown(query: UsageQuery, by: str, user) -> list[dict[str, Any]]:
    """Per key (``by="key"``: the keys ``user`` may see) or per model (``by="model"``): ``[{"name",
    "points"}]`` with every bucket of the range, for the usage page's charts. One query."""
    field = {"key": "key__prefix", "model": "model"}[by]
    series: dict[str, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    names: dict[str, str] = {}
    extra = ("key__name",) if by == "key" else ()
    where = usage_visible_filter(user) if by == "key" else None
    for row in _usage_rows(query, field, *extra, where=where):
        label = row[field] or "—"
        if by == "key" and row[field]:
            names[label] = f"{row['key__name']} ({label}…)"
        sums = series[label][_bucket(query, row["minute"])]
        for name in USAGE_SUMS:
            sums[name] += row[f"s_{name}"] or 0
    return [{"name": names.get(label, label), "points": [_point(t, buckets.get(t, {})) for t in _bucket_starts(query)]}
            for label, buckets in sorted(series.items())]


def csv_safe(value: Any) -> Any:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection): text starting with
    ``= + - @`` (or a tab or carriage return) gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def usage_csv_rows(query: UsageQuery, user):
    """Header, then one row per bucket, key and model (buckets with no usage are left out). The key
    column names only the keys ``user`` may see; other keys' usage is summed under an empty key."""
    yield list(CSV_FIELDS)
    admin = has_role(user, ADMIN)
    grouped: dict[tuple[int, str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in _usage_rows(query, "key__prefix", "key__owner_id", "model"):
        mine = admin or row["key__owner_id"] == user.pk
        sums = grouped[(_bucket(query, row["minute"]), (row["key__prefix"] or "") if mine else "", row["model"])]
        for name in USAGE_SUMS:
            sums[name] += row[f"s_{name}"] or 0
    for (t, key_prefix, model), sums in sorted(grouped.items()):
        point = _point(t, sums)
        point.update(key=key_prefix, model=model)
        yield [csv_safe("" if point[f] is None else point[f]) for f in CSV_FIELDS]


def usage_visible_filter(user) -> Q:
    """Rows whose per-key breakdown ``user`` may see: all for an admin, else their keys'."""
    return Q() if has_role(user, ADMIN) else Q(key__owner=user)

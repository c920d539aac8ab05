"""Usage: summed over gateway processes, filtered, bucketed; who sees what; 400s; CSV; query count."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from jobs.gateway import services
from jobs.gateway.models import ApiKey, UsageMinute
from tests.jobs import factories as jf

pytestmark = pytest.mark.django_db

T0 = (timezone.now() - timedelta(minutes=30)).replace(second=0, microsecond=0)


def key_of(user, name="app"):
    return ApiKey.objects.create(name=name, owner=user, prefix=f"bk-{name}"[:12], digest=name.ljust(64, "0"))


def usage(minute=T0, **fields):
    fields.setdefault("source", "gw-a")
    return UsageMinute.objects.create(minute=minute, **fields)


def window(**extra):
    params = {"start": (T0 - timedelta(minutes=5)).isoformat(), "end": (T0 + timedelta(minutes=5)).isoformat()}
    return {**params, **extra}


def test_usage_sums_the_rows_of_every_gateway_process(admin_api):
    job = jf.job("qwen-chat")
    key = key_of(admin_api.user)
    usage(source="gw-a", key=key, job=job, model="qwen-chat", requests=3, errors=1, errors_by_kind={"upstream": 1},
          prompt_tokens=30, completion_tokens=60, latency_ms_sum=300, ttft_ms_sum=30, ttft_count=3)
    usage(source="gw-b", key=key, job=job, model="qwen-chat", requests=1, errors=1, errors_by_kind={"http_429": 1},
          prompt_tokens=10, completion_tokens=20, latency_ms_sum=100, ttft_ms_sum=10, ttft_count=1)
    response = admin_api.get("/api/v1/usage/", window())
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["points"]) == 10 and body["step"] == 60
    point = next(p for p in body["points"] if p["requests"])
    assert datetime.fromisoformat(point["t"].replace("Z", "+00:00")) == T0
    assert point == {"t": point["t"], "requests": 4, "errors": 2, "prompt_tokens": 40, "completion_tokens": 80,
                     "latency_ms_avg": 100.0, "ttft_ms_avg": 10.0}
    assert body["totals"]["requests"] == 4 and body["totals"]["completion_tokens"] == 80
    assert body["errors_by_kind"] == {"http_429": 1, "upstream": 1}


def test_usage_filters_by_job_route_model_and_key_and_buckets_by_step(admin_api):
    a, b = jf.job("a"), jf.job("b")
    key = key_of(admin_api.user)
    usage(job=a, model="a", requests=1, key=key)
    usage(job=b, model="b", requests=10, minute=T0 + timedelta(minutes=1))
    assert admin_api.get("/api/v1/usage/", window(job=a.pk)).json()["totals"]["requests"] == 1
    assert admin_api.get("/api/v1/usage/", window(model="b")).json()["totals"]["requests"] == 10
    assert admin_api.get("/api/v1/usage/", window(key=key.pk)).json()["totals"]["requests"] == 1
    assert admin_api.get("/api/v1/usage/", window(route=5)).json()["totals"]["requests"] == 0
    body = admin_api.get("/api/v1/usage/", window(step=600)).json()
    assert sum(p["requests"] for p in body["points"]) == 11 and len(body["points"]) <= 2


@pytest.mark.parametrize("params, field", [
    ({"step": "30"}, "step"), ({"step": "90"}, "step"), ({"step": "abc"}, "step"), ({"step": "-60"}, "step"),
    ({"start": "yesterday"}, "start"), ({"end": "2024-13-45"}, "end"), ({"job": "x"}, "job"), ({"key": "0"}, "key"),
    ({"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "end"),
    ({"start": "2000-01-01T00:00:00Z", "step": "60"}, "step"),
])
def test_bad_usage_queries_are_a_400_naming_the_field(admin_api, params, field):
    response = admin_api.get("/api/v1/usage/", params)
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_per_key_usage_is_for_its_owner_and_admins_and_sums_for_every_reader(client_for, make_user):
    operator, viewer = client_for("operator"), client_for("viewer")
    someone = make_user("operator", "someone")
    mine, theirs = key_of(operator.user, "mine"), key_of(someone, "theirs")
    usage(key=mine, requests=2)
    usage(key=theirs, requests=5)
    assert operator.get("/api/v1/usage/", window(key=mine.pk)).json()["totals"]["requests"] == 2
    assert "key" in operator.get("/api/v1/usage/", window(key=theirs.pk)).json()
    assert viewer.get("/api/v1/usage/", window(key=mine.pk)).status_code == 403
    assert viewer.get("/api/v1/usage/", window()).json()["totals"]["requests"] == 7
    assert operator.get("/api/v1/usage/", window()).json()["totals"]["requests"] == 7


def test_the_usage_api_makes_the_same_few_queries_whatever_the_range(admin_api, django_assert_num_queries):
    key = key_of(admin_api.user)
    for minute in range(20):
        for source in ("gw-a", "gw-b", "gw-c"):
            usage(source=source, key=key, minute=T0 - timedelta(minutes=minute), requests=1, errors=1,
                  errors_by_kind={"upstream": 1})
    admin_api.get("/api/v1/usage/", window())  # warm: token and role lookups
    # token auth (1), the user's groups (1), the points (1), errors by kind (1)
    with django_assert_num_queries(4):
        response = admin_api.get("/api/v1/usage/", window(start=(T0 - timedelta(hours=2)).isoformat(), step=120))
    assert response.json()["totals"]["requests"] == 60


def test_the_csv_export_escapes_cells_a_spreadsheet_would_run(admin_api):
    key = key_of(admin_api.user)
    usage(key=key, model="=HYPERLINK(\"http://evil\")", requests=2, prompt_tokens=5)
    usage(key=key, model="@SUM(A1)", requests=1)
    usage(key=key, model="plain", requests=1)
    for response in (admin_api.get("/api/v1/usage/export/", window()),
                     admin_api.get("/api/v1/usage/", window(format="csv"))):
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert rows[0] == list(services.CSV_FIELDS)
        models = sorted(r[2] for r in rows[1:])
        assert models == ["'=HYPERLINK(\"http://evil\")", "'@SUM(A1)", "plain"]
        assert all(r[1] == key.prefix for r in rows[1:])


def test_the_csv_export_names_only_the_keys_the_user_may_see(client_for, make_user):
    operator = client_for("operator")
    usage(key=key_of(make_user("operator", "someone"), "theirs"), model="m", requests=3)
    rows = list(csv.reader(io.StringIO(operator.get("/api/v1/usage/export/", window()).content.decode())))
    assert [r[1] for r in rows[1:]] == [""] and rows[1][3] == "3"


def test_csv_safe_prefixes_formula_cells_only():
    assert [services.csv_safe(v) for v in ("=1", "+1", "-1", "@x", "ok", 5)] == ["'=1", "'+1", "'-1", "'@x", "ok", 5]


def test_gateway_series_are_per_job_rates_summed_over_processes_for_queries_and_alerts(db):
    from console.telemetry import series as telemetry

    job = jf.job("qwen-chat")
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=2)
    usage(source="gw-a", job=job, minute=minute, requests=4, errors=1, prompt_tokens=10, completion_tokens=5)
    usage(source="gw-b", job=job, minute=minute, requests=6, prompt_tokens=1, completion_tokens=4)
    [result] = telemetry.query("gateway.requests_per_min", start=minute - timedelta(minutes=5),
                               end=minute + timedelta(minutes=1), step=60)
    assert result.labels == {"job": job.pk, "job_name": "qwen-chat"}
    assert result.points == [(minute.timestamp(), 10.0)]
    [tokens] = telemetry.query("gateway.tokens_per_min", job=job.pk, start=minute - timedelta(minutes=5),
                               end=minute + timedelta(minutes=5), step=120)
    assert sum(v for _, v in tokens.points) == 10.0  # 20 tokens in a two-minute bucket
    [latest] = telemetry.latest("gateway.errors_per_min", 300)
    assert latest.value == 1.0 and latest.time == minute
    assert telemetry.get_series("gateway.requests_per_min").scope == "job"
    assert minute.tzinfo is not None and minute.astimezone(UTC) == minute


def test_gateway_series_are_listed_and_queried_through_the_metrics_api(viewer_api):
    job = jf.job("qwen-chat")
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=3)
    usage(job=job, minute=minute, requests=6)
    names = {s["name"] for s in viewer_api.get("/api/v1/metrics/series/?scope=job").json()["results"]}
    assert {"gateway.requests_per_min", "gateway.errors_per_min", "gateway.tokens_per_min"} <= names
    body = viewer_api.get("/api/v1/metrics/query/", {"series": "gateway.requests_per_min", "job": job.pk,
                                                    "start": (minute - timedelta(minutes=10)).isoformat()}).json()
    assert body["step"] == 60 and body["resolution"] == "1m"
    assert body["results"][0]["points"] == [[minute.timestamp(), 6.0]]

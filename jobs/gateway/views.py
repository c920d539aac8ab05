"""Gateway pages: API keys, routes, usage, the playground; and the job page's gateway snippet.

Thin like the API: the work is in jobs.gateway.services. The API key page shows a new key once, in
the answer to the POST that created it (never stored, never in a redirect or a message).
"""

from __future__ import annotations

import json
from datetime import timedelta

from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from console.core import timefmt
from console.core.pages import copy_api_errors
from console.core.permissions import ADMIN, OPERATOR, VIEWER, has_role
from jobs.gateway import services
from jobs.gateway.models import Route
from jobs.gateway.serializers import ApiKeySerializer, RouteSerializer

RANGES = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(days=1), "7d": timedelta(days=7)}
RANGE_STEPS = {"1h": 60, "6h": 300, "24h": 900, "7d": 3600}


def gateway_url() -> str:
    return settings.CONSOLE_GATEWAY_URL + "/v1"


def _need(user, role):
    if not has_role(user, role):
        raise PermissionDenied


class ApiKeyForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    models = forms.CharField(label=gettext_lazy("Models"), required=False,
                             help_text=gettext_lazy("Gateway model names, one per line or comma separated; "
                                                    "empty: every model."),
                             widget=forms.Textarea(attrs={"rows": 2}))
    expires_at = forms.DateTimeField(label=gettext_lazy("Expires at"), required=False,
                                     help_text=gettext_lazy("Empty: never. YYYY-MM-DD HH:MM, server time."),
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    rpm = forms.IntegerField(label=gettext_lazy("Requests per minute"), required=False)
    tpm = forms.IntegerField(label=gettext_lazy("Tokens per minute"), required=False)
    max_concurrency = forms.IntegerField(label=gettext_lazy("Concurrent requests"), required=False)

    def api_payload(self) -> dict:
        data = dict(self.cleaned_data)
        data["models"] = [m.strip() for m in data["models"].replace(",", "\n").splitlines() if m.strip()]
        return data


@login_required
@never_cache
def key_list(request):
    """Keys the user may see; operators create one here, and the answer shows it once."""
    _need(request.user, VIEWER)
    can_create = has_role(request.user, OPERATOR)
    form = ApiKeyForm(request.POST or None)
    created = None
    if request.method == "POST":
        _need(request.user, OPERATOR)
        if form.is_valid():
            serializer = ApiKeySerializer(data=form.api_payload(), context={"request": request})
            if serializer.is_valid():
                key = serializer.save()
                created = {"key": key._secret, "name": key.name}
                form = ApiKeyForm()
            else:
                copy_api_errors(form, serializer.errors)
    keys = services.visible_keys(request.user).order_by("revoked", "-created_at")
    return render(request, "jobs/gateway/key_list.html", {
        "keys": keys, "form": form, "can_create": can_create, "created": created,
        "is_admin": has_role(request.user, ADMIN), "gateway_url": gateway_url(), "section": "keys"})


@login_required
@require_POST
def key_revoke(request, pk):
    _need(request.user, OPERATOR)
    key = get_object_or_404(services.visible_keys(request.user), pk=pk)
    services.revoke_key(key, request=request)
    messages.success(request, _("Key %(prefix)s… revoked.") % {"prefix": key.prefix})
    return redirect("gateway-keys")


class RouteForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200,
                           help_text=gettext_lazy("The model name clients send."))
    fallback = forms.ModelChoiceField(label=gettext_lazy("Fallback job"), required=False, queryset=None,
                                      help_text=gettext_lazy("Used when no target has a ready instance."))

    def __init__(self, *args, jobs=(), weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["fallback"].queryset = apps.get_model("jobs", "Job").objects.order_by("name")
        self.jobs = list(jobs)
        for job in self.jobs:
            self.fields[f"weight_{job.pk}"] = forms.IntegerField(
                label=job.name, required=False, min_value=0, max_value=1_000_000,
                initial=(weights or {}).get(job.pk))

    def weight_fields(self):
        return [self[f"weight_{job.pk}"] for job in self.jobs]

    def api_payload(self) -> dict:
        data = self.cleaned_data
        return {"name": data["name"], "fallback": data["fallback"].pk if data["fallback"] else None,
                "targets": [{"job": job.pk, "weight": data[f"weight_{job.pk}"]} for job in self.jobs
                            if data.get(f"weight_{job.pk}") is not None]}


@login_required
def route_list(request):
    _need(request.user, VIEWER)
    routes = Route.objects.select_related("fallback").prefetch_related("targets__job")
    return render(request, "jobs/gateway/route_list.html", {
        "routes": routes, "can_operate": has_role(request.user, OPERATOR), "section": "routes"})


@login_required
def route_edit(request, pk=None):
    _need(request.user, OPERATOR)
    route = get_object_or_404(Route, pk=pk) if pk else None
    jobs = apps.get_model("jobs", "Job").objects.order_by("name")
    weights = {t.job_id: t.weight for t in route.targets.all()} if route else {}
    initial = {"name": route.name, "fallback": route.fallback_id} if route else None
    form = RouteForm(request.POST or None, jobs=jobs, weights=weights, initial=initial)
    if request.method == "POST" and form.is_valid():
        serializer = RouteSerializer(route, data=form.api_payload(), context={"request": request})
        if serializer.is_valid():
            saved = serializer.save()
            messages.success(request, _("Route %(name)s saved.") % {"name": saved.name})
            return redirect("gateway-routes")
        for field, errors in serializer.errors.items():
            form.add_error(field if field in ("name", "fallback") else None, errors)
    return render(request, "jobs/gateway/route_form.html", {"form": form, "route": route, "section": "routes"})


@login_required
@require_POST
def route_delete(request, pk):
    _need(request.user, OPERATOR)
    route = get_object_or_404(Route, pk=pk)
    services.delete_route(route, request=request)
    messages.success(request, _("Route %(name)s deleted.") % {"name": route.name})
    return redirect("gateway-routes")


def _figure(series: list[dict], metric: str, title: str) -> dict:
    """A usage chart; its times are the user's wall time (plotly.js draws a date string as it is), and its
    axis names the zone, as every other time on the page (console.core.timefmt)."""
    return {"data": [{"type": "scatter", "mode": "lines", "name": s["name"],
                      "x": [timefmt.wall_time(p["t"]) for p in s["points"]], "y": [p[metric] for p in s["points"]]}
                     for s in series],
            "layout": {"title": {"text": title}, "margin": {"l": 50, "r": 20, "t": 40, "b": 48}, "height": 290,
                       "legend": {"orientation": "h"},
                       "xaxis": {"type": "date", "title": {"text": timefmt.zone_label(), "font": {"size": 10}},
                                 "hoverformat": "%Y-%m-%d %H:%M:%S"}}}


def _tokens(series: list[dict]) -> list[dict]:
    return [{"name": s["name"], "points": [{"t": p["t"], "tokens": p["prompt_tokens"] + p["completion_tokens"]}
                                           for p in s["points"]]} for s in series]


@login_required
def usage(request):
    """Requests and tokens per key (the user's, or all for an admin) and per model, with totals."""
    _need(request.user, VIEWER)
    chosen = request.GET.get("range") if request.GET.get("range") in RANGES else "1h"
    now = timezone.now()
    params = {"start": (now - RANGES[chosen]).isoformat(), "end": now.isoformat(), "step": str(RANGE_STEPS[chosen])}
    for name in ("key", "model"):
        if request.GET.get(name):
            params[name] = request.GET[name]
    error = None
    try:
        query = services.parse_usage_query(params, request.user)
    except (services.UsageError, PermissionError) as exc:
        error = "; ".join(" ".join(v) for v in exc.errors.values()) if isinstance(exc, services.UsageError) \
            else _("Usage of one key is shown to its owner and admins only.")
        params.pop("key", None)
        query = services.parse_usage_query(params, request.user)
    report = services.usage_report(query)
    figures = []
    if has_role(request.user, OPERATOR):
        by_key = services.usage_breakdown(query, "key", request.user)
        figures += [_figure(by_key, "requests", _("Requests per key")),
                    _figure(_tokens(by_key), "tokens", _("Tokens per key"))]
    by_model = services.usage_breakdown(query, "model", request.user)
    figures += [_figure(by_model, "requests", _("Requests per model")),
                _figure(_tokens(by_model), "tokens", _("Tokens per model"))]
    csv_url = reverse("api-usage-export") + "?" + urlencode(params)
    return render(request, "jobs/gateway/usage.html", {
        "report": report, "figures": figures, "ranges": list(RANGES), "range": chosen, "csv_url": csv_url,
        "keys": services.visible_keys(request.user) if has_role(request.user, OPERATOR) else [],
        "key": request.GET.get("key", ""), "model": request.GET.get("model", ""), "error": error,
        "section": "usage"})


@login_required
def playground(request):
    """Chat with a model through the gateway, from the browser; a one-hour key is minted for it."""
    _need(request.user, VIEWER)
    return render(request, "jobs/gateway/playground.html", {
        "names": services.gateway_model_names(), "can_operate": has_role(request.user, OPERATOR),
        "gateway_url": gateway_url(), "section": "playground",
        "texts": {"ttft": _("TTFT"), "tokens_per_s": _("tokens/s"), "error": _("Error"),
                  "minting": _("Creating a one-hour key…"), "stopped": _("Stopped."),
                  "you": _("You"), "assistant": _("Assistant")}})


@login_required
@require_POST
@never_cache
def playground_key(request):
    """Mint a key for the playground: the chosen model only, one hour, audited. JSON ``{key, expires_at}``."""
    if not has_role(request.user, OPERATOR):
        return JsonResponse({"detail": _("Your role does not allow this action.")}, status=403)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = {}
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        return JsonResponse({"model": [_("Pick a model.")]}, status=400)
    key, secret = services.mint_playground_key(request.user, model.strip(), request=request)
    return JsonResponse({"key": secret, "prefix": key.prefix, "expires_at": key.expires_at.isoformat()})


def job_snippet(job) -> dict:
    """What the job page shows to call the job through the gateway: the model name, the URL, a curl
    command and a Python ``openai`` snippet (the key left as an environment variable)."""
    model = (job.options or {}).get("served_name") or job.name
    url = gateway_url()
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    curl = (f"curl {url}/chat/completions \\\n  -H \"Authorization: Bearer $BOOM_API_KEY\" \\\n"
            f"  -H 'Content-Type: application/json' \\\n  -d '{body}'")
    python = ("from openai import OpenAI\n\n"
              f"client = OpenAI(base_url={url!r}, api_key=os.environ[\"BOOM_API_KEY\"])\n"
              f"reply = client.chat.completions.create(model={model!r}, "
              "messages=[{\"role\": \"user\", \"content\": \"Hello!\"}])\n"
              "print(reply.choices[0].message.content)")
    return {"model": model, "url": url, "curl": curl, "python": "import os\n" + python}

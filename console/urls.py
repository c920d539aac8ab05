"""URL map: pages, the REST API under /api/v1/, its schema, health endpoints, admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from console import exposition, health, timezones
from console.alerting.api.urls import router as alerting_router
from console.core.api import EventViewSet
from console.core.oidc import ConsoleOIDCCallbackView, ConsoleOIDCRequestView
from console.dashboards import views as dashboard_views
from console.telemetry.api import router as telemetry_router
from jobs.api.urls import router as jobs_router
from jobs.api.views import RecommendView
from models_registry.api.urls import router as models_router
from nodes.api.urls import router as nodes_router

# A database, Redis or broker outage raised outside a view answers 503 naming the part (console.core.outage).
handler500 = "console.core.outage.server_error"

router = DefaultRouter()
router.register("events", EventViewSet, basename="api-event")
# API route names get an ``api-`` prefix so they never collide with the page names (``node-list`` is a page).
for app_router in (nodes_router, jobs_router, models_router, telemetry_router, alerting_router):
    for prefix, viewset, basename in app_router.registry:
        router.register(prefix, viewset, basename="api-" + (basename or router.get_default_basename(viewset)))

urlpatterns = [
    path("", dashboard_views.dashboard, name="dashboard"),
    path("events/", dashboard_views.events, name="event-list"),
    path("settings/time-zone/", timezones.set_time_zone, name="set-time-zone"),
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (the API's JSON, the admin).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True), name="favicon"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", exposition.metrics, name="prometheus-metrics"),
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # OpenID Connect sign-in (404 unless CONSOLE_OIDC_CLIENT_ID is set).
    path("oidc/authenticate/", ConsoleOIDCRequestView.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", ConsoleOIDCCallbackView.as_view(), name="oidc_authentication_callback"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("admin/", admin.site.urls),
    path("api/v1/model-versions/<int:pk>/recommend/", RecommendView.as_view(), name="api-version-recommend"),
    path("api/v1/", include(router.urls)),
    # Both need a viewer (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]); the docs page sends a browser to the
    # login page first. The split view serves its script as a file (no inline script under the CSP).
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", login_required(SpectacularSwaggerSplitView.as_view(url_name="schema")), name="api-docs"),
    path("nodes/", include("nodes.urls")),
    path("jobs/", include("jobs.urls")),
    path("alerts/", include("console.alerting.urls")),
    path("models/", include("models_registry.urls")),
    path("", include("console.accounts.urls")),
]

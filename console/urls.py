"""URL map: pages, the REST API under /api/v1/, its schema, health endpoints, admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from console import health
from console.api import EventViewSet
from console.dashboards import views as dashboard_views
from jobs.api.urls import router as jobs_router
from nodes.api.urls import router as nodes_router

router = DefaultRouter()
router.register("events", EventViewSet)
router.registry.extend(nodes_router.registry)
router.registry.extend(jobs_router.registry)

urlpatterns = [
    path("", dashboard_views.dashboard, name="dashboard"),
    path("events/", dashboard_views.events, name="event-list"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("nodes/", include("nodes.urls")),
]

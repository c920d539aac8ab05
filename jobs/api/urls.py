from rest_framework.routers import DefaultRouter

from jobs.api.views import InstanceViewSet, JobViewSet
from jobs.benchmarks.api import BenchmarkRunViewSet
from jobs.gateway.api import ApiKeyViewSet, RouteViewSet, UsageViewSet

router = DefaultRouter()
router.register("jobs", JobViewSet)
router.register("instances", InstanceViewSet)
router.register("benchmarks", BenchmarkRunViewSet)
router.register("api-keys", ApiKeyViewSet, basename="apikey")
router.register("routes", RouteViewSet)
router.register("usage", UsageViewSet, basename="usage")

from rest_framework.routers import DefaultRouter

from jobs.api.views import InstanceViewSet, JobViewSet
from jobs.benchmarks.api import BenchmarkRunViewSet

router = DefaultRouter()
router.register("jobs", JobViewSet)
router.register("instances", InstanceViewSet)
router.register("benchmarks", BenchmarkRunViewSet)

from rest_framework.routers import DefaultRouter

from jobs.api.benchmarks import BenchmarkRunViewSet
from jobs.api.views import InstanceViewSet, JobViewSet

router = DefaultRouter()
router.register("jobs", JobViewSet)
router.register("instances", InstanceViewSet)
router.register("benchmarks", BenchmarkRunViewSet)

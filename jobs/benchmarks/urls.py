"""Benchmark pages, mounted at /jobs/benchmarks/ by jobs/urls.py (the API routes are in jobs/api/urls.py)."""

from django.urls import path

from jobs.benchmarks import views

urlpatterns = [
    path("", views.benchmark_list, name="benchmark-list"),
    path("add/", views.benchmark_create, name="benchmark-add"),
    path("compare/", views.benchmark_compare, name="benchmark-compare"),
    path("<int:pk>/", views.benchmark_detail, name="benchmark-detail"),
    path("<int:pk>/cancel/", views.benchmark_cancel, name="benchmark-cancel"),
    path("<int:pk>/export.<str:fmt>", views.benchmark_export, name="benchmark-export"),
]

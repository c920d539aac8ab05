from django.urls import path

from jobs import benchmark_views, views

urlpatterns = [
    path("", views.job_list, name="job-list"),
    path("add/", views.job_create, name="job-add"),
    path("benchmarks/", benchmark_views.benchmark_list, name="benchmark-list"),
    path("benchmarks/add/", benchmark_views.benchmark_create, name="benchmark-add"),
    path("benchmarks/compare/", benchmark_views.benchmark_compare, name="benchmark-compare"),
    path("benchmarks/<int:pk>/", benchmark_views.benchmark_detail, name="benchmark-detail"),
    path("benchmarks/<int:pk>/cancel/", benchmark_views.benchmark_cancel, name="benchmark-cancel"),
    path("benchmarks/<int:pk>/export.<str:fmt>", benchmark_views.benchmark_export, name="benchmark-export"),
    path("<int:pk>/", views.job_detail, name="job-detail"),
    path("<int:pk>/<str:action>/", views.job_action, name="job-action"),
]

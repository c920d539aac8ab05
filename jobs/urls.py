from django.urls import include, path

from jobs import views

urlpatterns = [
    path("", views.job_list, name="job-list"),
    path("add/", views.job_create, name="job-add"),
    path("deploy/<int:version_pk>/", views.job_deploy, name="job-deploy"),
    path("benchmarks/", include("jobs.benchmarks.urls")),
    path("gateway/", include("jobs.gateway.urls")),
    path("instances/<int:pk>/log/", views.instance_log, name="instance-log"),
    path("<int:pk>/", views.job_detail, name="job-detail"),
    path("<int:pk>/edit/", views.job_edit, name="job-edit"),
    path("<int:pk>/scale/", views.job_scale, name="job-scale"),
    path("<int:pk>/delete/", views.job_delete, name="job-delete"),
    path("<int:pk>/<str:action>/", views.job_action, name="job-action"),
]

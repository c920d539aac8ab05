from django.urls import path

from nodes import views

urlpatterns = [
    path("", views.node_list, name="node-list"),
    path("add/", views.node_edit, name="node-add"),
    path("<int:pk>/", views.node_detail, name="node-detail"),
    path("<int:pk>/edit/", views.node_edit, name="node-edit"),
    path("<int:pk>/probe/", views.node_probe, name="node-probe"),
    path("<int:pk>/maintenance/", views.node_maintenance, name="node-maintenance"),
    path("<int:pk>/delete/", views.node_delete, name="node-delete"),
    path("<int:pk>/reset-host-key/", views.node_reset_host_key, name="node-reset-host-key"),
    path("credentials/", views.credential_list, name="credential-list"),
    path("credentials/generate/", views.credential_generate, name="credential-generate"),
    path("credentials/<int:pk>/edit/", views.credential_edit, name="credential-edit"),
    path("credentials/<int:pk>/delete/", views.credential_delete, name="credential-delete"),
]

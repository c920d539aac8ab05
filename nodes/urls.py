from django.urls import path

from nodes import views

urlpatterns = [
    path("", views.node_list, name="node-list"),
    path("add/", views.node_edit, name="node-add"),
    path("<int:pk>/", views.node_detail, name="node-detail"),
    path("<int:pk>/edit/", views.node_edit, name="node-edit"),
    path("<int:pk>/probe/", views.node_probe, name="node-probe"),
    path("<int:pk>/maintenance/", views.node_maintenance, name="node-maintenance"),
    path("credentials/", views.credential_list, name="credential-list"),
]

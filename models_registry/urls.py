from django.urls import path

from models_registry import views

urlpatterns = [
    path("", views.model_list, name="model-list"),
    path("add/", views.model_create, name="model-add"),
    path("catalog/load/", views.catalog_load, name="model-catalog-load"),
    path("versions/add/", views.version_create, name="model-version-add"),
    path("versions/<int:pk>/", views.version_detail, name="model-version-detail"),
    path("versions/<int:pk>/verify/", views.version_verify, name="model-version-verify"),
    path("versions/<int:pk>/promote/", views.version_promote, name="model-version-promote"),
    path("versions/<int:pk>/import/", views.version_import, name="model-version-import"),
    path("versions/<int:pk>/deprecate/", views.version_deprecate, name="model-version-deprecate"),
    path("versions/<int:pk>/reinstate/", views.version_reinstate, name="model-version-reinstate"),
    path("versions/<int:pk>/edit/", views.version_edit, name="model-version-edit"),
    path("versions/<int:pk>/evaluations/", views.version_evaluations, name="model-version-evaluations"),
    path("versions/<int:pk>/delete/", views.version_delete, name="model-version-delete"),
    path("versions/<int:pk>/copies/", views.copy_add, name="model-copy-add"),
    path("versions/<int:pk>/copies/<int:copy_id>/<str:action>/", views.copy_action, name="model-copy-action"),
]

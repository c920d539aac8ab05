from django.urls import path

from jobs.gateway import views

urlpatterns = [
    path("keys/", views.key_list, name="gateway-keys"),
    path("keys/<int:pk>/revoke/", views.key_revoke, name="gateway-key-revoke"),
    path("routes/", views.route_list, name="gateway-routes"),
    path("routes/add/", views.route_edit, name="gateway-route-add"),
    path("routes/<int:pk>/", views.route_edit, name="gateway-route-edit"),
    path("routes/<int:pk>/delete/", views.route_delete, name="gateway-route-delete"),
    path("usage/", views.usage, name="gateway-usage"),
    path("playground/", views.playground, name="gateway-playground"),
    path("playground/key/", views.playground_key, name="gateway-playground-key"),
]

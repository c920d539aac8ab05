from django.urls import path

from console.accounts import views

urlpatterns = [
    path("users/", views.user_list, name="user-list"),
    path("users/add/", views.user_create, name="user-add"),
    path("users/<int:pk>/role/", views.user_role_change, name="user-role"),
    path("users/<int:pk>/deactivate/", views.user_deactivate, name="user-deactivate"),
    path("users/<int:pk>/activate/", views.user_activate, name="user-activate"),
    path("tokens/", views.token_list, name="token-list"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
]

from django.contrib import admin

from console.core.models import ApiToken, Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["time", "actor", "verb", "object_type", "object_id", "source_address"]
    list_filter = ["verb", "object_type"]
    search_fields = ["actor", "object_id", "object_repr"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Admins see whose tokens exist (the first 8 characters) and delete them; keys are created with
    ``manage.py drf_create_token USER`` and shown once (only their digest is stored)."""

    list_display = ["prefix", "name", "user", "created"]
    search_fields = ["user__username", "prefix"]
    readonly_fields = ["prefix", "name", "user", "created"]
    fields = ["prefix", "name", "user", "created"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

from django.contrib import admin

from console.core.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["time", "actor", "verb", "object_type", "object_id", "source_address"]
    list_filter = ["verb", "object_type"]
    search_fields = ["actor", "object_id", "object_repr"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

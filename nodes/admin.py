from django.contrib import admin

from nodes.models import Accelerator, Credential, Node, NodeStatusChange


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    """The private key is never shown; add credentials through the console page or the API."""

    list_display = ["name", "username", "key_type", "fingerprint"]
    readonly_fields = ["key_type", "fingerprint", "public_key"]
    exclude = ["encrypted_private_key"]

    def has_add_permission(self, request):
        return False


class AcceleratorInline(admin.TabularInline):
    model = Accelerator
    extra = 0
    fields = ["vendor", "index", "model", "health", "present", "memory_total_bytes"]
    readonly_fields = fields
    can_delete = False


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ["name", "address", "transport", "status", "last_seen", "accelerator_count"]
    list_filter = ["status", "transport"]
    search_fields = ["name", "address"]
    readonly_fields = ["status", "status_detail", "last_seen", "facts", "host_key_fingerprint"]
    inlines = [AcceleratorInline]


@admin.register(NodeStatusChange)
class NodeStatusChangeAdmin(admin.ModelAdmin):
    list_display = ["node", "time", "from_status", "to_status", "actor"]
    list_filter = ["to_status"]

from django.contrib import admin

from models_registry.models import Alias, Evaluation, Model, ModelFile, ModelVersion, Quantization


@admin.register(Quantization)
class QuantizationAdmin(admin.ModelAdmin):
    """Quantizations beside the built-in list (models_registry.quantization); names are normalised."""

    list_display = ["name", "bits_per_param", "description"]


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ["name", "family", "publisher", "parameters", "architecture"]
    search_fields = ["name", "family"]


class EvaluationInline(admin.TabularInline):
    model = Evaluation
    extra = 0


class ModelFileInline(admin.TabularInline):
    model = ModelFile
    extra = 0
    fields = ["path", "size_bytes", "sha256"]
    readonly_fields = fields
    can_delete = False
    max_num = 0


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Status, manifest and checksums change only through the registry's workflows (read-only here)."""

    list_display = ["__str__", "quantization", "format", "status", "catalog", "size_bytes"]
    list_filter = ["status", "format", "catalog"]
    search_fields = ["model__name", "version"]
    readonly_fields = ["status", "status_detail", "progress", "sha256", "size_bytes", "memory_required_bytes",
                       "memory_estimate", "inspected_at", "verified_at", "import_pending"]
    inlines = [EvaluationInline, ModelFileInline]


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    list_display = ["model", "name", "version", "updated_at"]
    readonly_fields = ["model", "name", "version"]

    def has_add_permission(self, request):
        return False  # aliases move through promote/, which is atomic and audited

"""Model registry: models, versions (with quantized variants and lineage), file manifests,
evaluations and aliases."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from console.core.models import TransitionRecord
from models_registry.choices import CopyStatus, Modality, ParentRelation, VersionStatus, WeightFormat
from models_registry.quantization import QUANTIZATIONS, normalize


class Quantization(models.Model):
    """A quantization an admin added beside the built-in list (models_registry.quantization)."""

    name = models.CharField(_("name"), max_length=32, unique=True,
                            validators=[RegexValidator(r"^[a-z0-9][a-z0-9._-]*$",
                                                       _("Lower-case letters, digits, '.', '_' and '-'."))])
    bits_per_param = models.FloatField(_("bits per parameter"),
                                       validators=[MinValueValidator(0.5), MaxValueValidator(64)])
    description = models.CharField(_("description"), max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        self.name = normalize(self.name or "")
        if self.name in QUANTIZATIONS:
            raise ValidationError({"name": _("%(name)s is built in already.") % {"name": self.name}})


class Model(models.Model):
    """A model family member, e.g. DeepSeek-R1 or Qwen2.5-7B-Instruct, independent of its weights."""

    name = models.CharField(_("name"), max_length=128, unique=True)
    family = models.CharField(_("family"), max_length=64, blank=True)
    publisher = models.CharField(_("publisher"), max_length=64, blank=True)
    parameters = models.BigIntegerField(_("parameters"), null=True, blank=True)
    architecture = models.CharField(_("architecture"), max_length=128, blank=True)
    modality = models.CharField(_("modality"), max_length=32, choices=Modality.choices, default=Modality.TEXT)
    license = models.CharField(_("license"), max_length=64, blank=True)
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("model")

    def __str__(self):
        return self.name


class ModelVersion(models.Model):
    """One concrete set of weights: a version of a model in a format and quantization, where it lies,
    what it contains (manifest), whether it is intact, and how much accelerator memory it needs."""

    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(_("version"), max_length=64)
    format = models.CharField(_("format"), max_length=16, choices=WeightFormat.choices,
                              default=WeightFormat.SAFETENSORS)
    quantization = models.CharField(_("quantization"), max_length=32, default="bf16")
    dtype = models.CharField(_("dtype"), max_length=16, blank=True)
    source_uri = models.CharField(_("source URI"), max_length=1024)
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="model_versions", help_text=_("Where a path source_uri lies."))
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    parent_relation = models.CharField(max_length=16, choices=ParentRelation.choices, blank=True)
    parameters = models.BigIntegerField(_("parameters"), null=True, blank=True)
    architecture = models.JSONField(_("architecture"), default=dict, blank=True)
    size_bytes = models.BigIntegerField(_("size"), null=True, blank=True)
    sha256 = models.CharField(_("manifest sha256"), max_length=64, blank=True,
                              help_text=_("Digest of the sorted per-file manifest."))
    memory_required_bytes = models.BigIntegerField(_("memory required"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=VersionStatus.choices,
                              default=VersionStatus.REGISTERED, editable=False)
    status_detail = models.TextField(blank=True, editable=False)
    progress = models.FloatField(null=True, blank=True, editable=False)
    catalog = models.BooleanField(_("catalog entry"), default=False,
                                  help_text=_("Loaded from the catalog: no local files until imported."))
    memory_estimate = models.JSONField(default=dict, blank=True, editable=False,
                                       help_text=_("How memory_required_bytes was computed (parts and formula)."))
    import_pending = models.BooleanField(default=False, editable=False,
                                         help_text=_("The directory is waiting to be inspected."))
    inspected_at = models.DateTimeField(null=True, blank=True, editable=False)
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model__name", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="version_unique_per_model")]
        verbose_name = _("model version")

    def __str__(self):
        return f"{self.model.name}:{self.version}"


class ModelFile(models.Model):
    """One file of a version's manifest. ``sha256`` is set by verification and immutable once verified."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1024)
    size_bytes = models.BigIntegerField()
    mtime = models.FloatField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["version", "path"], name="file_unique_per_version")]

    def __str__(self):
        return self.path


class VersionStatusChange(TransitionRecord):
    """Append-only history of a version's status."""

    subject = "version"
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="status_history")
    from_status = models.CharField(max_length=16, choices=VersionStatus.choices)
    to_status = models.CharField(max_length=16, choices=VersionStatus.choices)


class ModelCopy(models.Model):
    """The files of a version on one node: where they lie and whether they are all there, verified.

    The node a version was imported from holds its first copy (``origin``). Other copies are made by a
    transfer from a node with a ready copy (models_registry.services.copies); ``status`` changes only
    through ``transition_copy``. ``updated_at`` is the heartbeat of the worker that copies or hashes.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="copies")
    node = models.ForeignKey("nodes.Node", on_delete=models.CASCADE, related_name="model_copies")
    path = models.CharField(_("path"), max_length=1024, help_text=_("The directory on the node."))
    origin = models.BooleanField(default=False, editable=False,
                                 help_text=_("The directory the version was imported from."))
    status = models.CharField(_("status"), max_length=16, choices=CopyStatus.choices, default=CopyStatus.PENDING,
                              editable=False)
    status_detail = models.TextField(blank=True, editable=False)
    source = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               editable=False, help_text=_("The copy the last transfer read from."))
    progress = models.FloatField(null=True, blank=True, editable=False)
    bytes_done = models.BigIntegerField(default=0, editable=False)
    size_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    bandwidth_limit = models.BigIntegerField(_("bandwidth limit (bytes/s)"), null=True, blank=True,
                                             help_text=_("Empty: as fast as the connections go."))
    files_skipped = models.PositiveIntegerField(default=0, editable=False,
                                                help_text=_("Files the last transfer found in place and kept."))
    files_copied = models.PositiveIntegerField(default=0, editable=False)
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: Bumped by each worker that takes the copy (to copy or to hash): a worker writes progress and moves the
    #: status only while its run is the current one, so a slow worker whose copy was started again (stale
    #: after CONSOLE_COPY_STALE_S) stops at its next progress write instead of writing beside the new one.
    run = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["version_id", "-origin", "node__name"]
        constraints = [models.UniqueConstraint(fields=["version", "node"], name="copy_unique_per_node")]
        verbose_name = _("model copy")

    def __str__(self):
        return f"{self.version_id}@{self.node_id}:{self.path}"


class CopyStatusChange(TransitionRecord):
    """Append-only history of a copy's status."""

    subject = "copy"
    copy = models.ForeignKey(ModelCopy, on_delete=models.CASCADE, related_name="status_history")
    from_status = models.CharField(max_length=16, choices=CopyStatus.choices)
    to_status = models.CharField(max_length=16, choices=CopyStatus.choices)


class Evaluation(models.Model):
    """An accuracy score of a version on a benchmark (CEval, MMLU, ...)."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations")
    benchmark = models.CharField(_("benchmark"), max_length=64)
    score = models.FloatField(_("score"))
    date = models.DateField(_("date"), null=True, blank=True)
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        ordering = ["benchmark", "-date"]

    def __str__(self):
        return f"{self.benchmark}={self.score}"


class Alias(models.Model):
    """A moving name for one version of a model, e.g. ``production`` or ``canary`` (unique per model)."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(_("alias"), max_length=32)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="alias_unique_per_model")]

    def __str__(self):
        return f"{self.model_id}@{self.name}"

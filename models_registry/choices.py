"""Choices and state tables of the model registry."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class VersionStatus(models.TextChoices):
    REGISTERED = "registered", _("registered")  # known; files not (yet) checked
    VERIFYING = "verifying", _("verifying")      # checksums being computed on the node
    VERIFIED = "verified", _("verified")         # every file matches its manifest
    FAILED = "failed", _("failed")               # inspection or verification failed; status_detail says why
    DEPRECATED = "deprecated", _("deprecated")   # kept for history; new jobs should not use it


# Allowed transitions (source -> targets). Every change goes through models_registry.services.transition_version.
VERSION_TRANSITIONS: dict[str, set[str]] = {
    VersionStatus.REGISTERED: {VersionStatus.VERIFYING, VersionStatus.FAILED, VersionStatus.DEPRECATED},
    VersionStatus.VERIFYING: {VersionStatus.VERIFIED, VersionStatus.FAILED, VersionStatus.REGISTERED},
    VersionStatus.VERIFIED: {VersionStatus.VERIFYING, VersionStatus.FAILED, VersionStatus.DEPRECATED},
    VersionStatus.FAILED: {VersionStatus.VERIFYING, VersionStatus.REGISTERED, VersionStatus.DEPRECATED},
    VersionStatus.DEPRECATED: {VersionStatus.REGISTERED},
}


class CopyStatus(models.TextChoices):
    PENDING = "pending", _("pending")        # asked for; files not (all) there yet, or not checked
    COPYING = "copying", _("copying")        # a transfer streams files from a ready copy to this node
    VERIFYING = "verifying", _("verifying")  # the files on this node are being hashed against the manifest
    READY = "ready", _("ready")              # every manifest file is there with its verified digest
    FAILED = "failed", _("failed")           # transfer or verification failed (or was cancelled): detail says why
    REMOVING = "removing", _("removing")     # its files are being deleted; the row goes when they are gone


# Allowed transitions (source -> targets). Every change goes through models_registry.services.copies.transition_copy.
COPY_TRANSITIONS: dict[str, set[str]] = {
    CopyStatus.PENDING: {CopyStatus.COPYING, CopyStatus.VERIFYING, CopyStatus.FAILED, CopyStatus.REMOVING},
    CopyStatus.COPYING: {CopyStatus.VERIFYING, CopyStatus.PENDING, CopyStatus.FAILED, CopyStatus.REMOVING},
    CopyStatus.VERIFYING: {CopyStatus.READY, CopyStatus.FAILED, CopyStatus.PENDING, CopyStatus.REMOVING},
    CopyStatus.READY: {CopyStatus.VERIFYING, CopyStatus.PENDING, CopyStatus.FAILED, CopyStatus.REMOVING},
    CopyStatus.FAILED: {CopyStatus.PENDING, CopyStatus.VERIFYING, CopyStatus.READY, CopyStatus.REMOVING},
    CopyStatus.REMOVING: {CopyStatus.FAILED},
}
#: A copy in one of these states has a worker on it (its ``updated_at`` is its heartbeat).
COPY_BUSY = {CopyStatus.COPYING, CopyStatus.VERIFYING, CopyStatus.REMOVING}


class WeightFormat(models.TextChoices):
    SAFETENSORS = "safetensors", "safetensors"
    GGUF = "gguf", "GGUF"
    PYTORCH = "pytorch", "PyTorch (.bin/.pt)"
    MINDIE = "mindie", "MindIE / OM"
    ONNX = "onnx", "ONNX"
    OTHER = "other", _("other")


class Modality(models.TextChoices):
    TEXT = "text", _("text")
    VISION_LANGUAGE = "vision-language", _("vision-language")
    EMBEDDING = "embedding", _("embedding")
    SPEECH = "speech", _("speech")


class ParentRelation(models.TextChoices):
    QUANTIZED = "quantized", _("quantized from")
    FINETUNED = "finetuned", _("fine-tuned from")
    CONVERTED = "converted", _("converted from")
    DISTILLED = "distilled", _("distilled from")

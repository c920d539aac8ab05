"""Test data for jobs: a model version and jobs."""

from jobs.models import Job
from models_registry.models import Model, ModelVersion


def version(name="Qwen2.5-7B-Instruct", version="bf16", quantization="bf16", memory=None, status="verified"):
    model, _ = Model.objects.get_or_create(name=name, defaults={"family": "qwen"})
    obj, _ = ModelVersion.objects.update_or_create(
        model=model, version=version,
        defaults={"quantization": quantization, "source_uri": f"/models/{name}-{version}",
                  "memory_required_bytes": memory})
    ModelVersion.objects.filter(pk=obj.pk).update(status=status)
    obj.status = status
    return obj


def job(name="qwen-chat", engine="vllm", **fields) -> Job:
    fields.setdefault("model_version", fields.get("model_version") or version())
    return Job.objects.create(name=name, engine=engine, **fields)

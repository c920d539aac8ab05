"""Import (inspection) and checksum verification through the services, on the local node, with real
safetensors and GGUF files. Tasks are run by calling the service functions, as the worker does."""

from __future__ import annotations

import hashlib
import os

import pytest

from console.core.models import Event
from models_registry import services, tasks
from models_registry.models import ModelFile, ModelVersion
from nodes.transports import NodeCommandError
from nodes.transports.local import LocalTransport
from tests.models_registry import raw_safetensors

pytestmark = pytest.mark.django_db


def register(model, node, directory, version="bf16", **extra) -> ModelVersion:
    return services.register_version(model=model, version=version, source_uri=str(directory), node=node, **extra)


def imported(model, node, directory, **extra) -> ModelVersion:
    version = register(model, node, directory, **extra)
    services.import_version(version.pk)
    version.refresh_from_db()
    return version


def verified(model, node, directory, **extra) -> ModelVersion:
    version = imported(model, node, directory, **extra)
    services.request_verify(version)
    services.verify_version(version.pk)
    version.refresh_from_db()
    return version


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- import ------------------------------------------------------------------------------------


def test_importing_a_safetensors_directory_records_files_parameters_architecture_and_memory(
        model, local_node, safetensors_dir, settings):
    settings.CONSOLE_MEMORY_ESTIMATE_CONTEXT = 1000
    version = register(model, local_node, safetensors_dir, quantization="")
    assert version.import_pending and version.status == "registered"
    services.import_version(version.pk)
    version.refresh_from_db()
    assert not version.import_pending and version.inspected_at is not None and version.status == "registered"
    assert version.format == "safetensors" and version.dtype == "bf16" and version.quantization == "bf16"
    assert version.parameters == 128 * 64 + 64 + 128 * 64
    assert version.architecture["architecture"] == "LlamaForCausalLM"
    assert version.architecture["num_layers"] == 2 and version.architecture["num_kv_heads"] == 2
    files = {f.path: f for f in version.files.all()}
    assert set(files) == {"config.json", "tokenizer.json", "model-00001-of-00002.safetensors",
                          "model-00002-of-00002.safetensors"}
    for path, row in files.items():
        on_disk = (safetensors_dir / path).stat()
        assert row.size_bytes == on_disk.st_size and row.mtime == pytest.approx(on_disk.st_mtime)
        assert row.sha256 == ""
    assert version.size_bytes == sum(f.size_bytes for f in files.values())
    weights = sum(files[f"model-0000{i}-of-00002.safetensors"].size_bytes for i in (1, 2))
    # KV cache: 2 x 2 layers x 2 KV heads x 16 head dim x 2 B = 256 B per token, x 1000 tokens x 1 sequence.
    estimate = version.memory_estimate
    assert estimate["weights_bytes"] == weights and estimate["kv_bytes_per_token"] == 256
    assert estimate["kv_cache_bytes"] == 256_000 and estimate["context_length"] == 1000
    assert version.memory_required_bytes == estimate["total_bytes"] == int(estimate["weights_bytes"] + 256_000
                                                                            + estimate["overhead_bytes"])
    model.refresh_from_db()
    assert model.parameters == version.parameters and model.architecture == "LlamaForCausalLM"
    assert Event.objects.filter(verb="imported", object_id=str(version.pk)).exists()


def test_importing_a_gguf_directory_takes_quantization_and_architecture_from_its_metadata(
        model, local_node, gguf_dir):
    version = imported(model, local_node, gguf_dir, version="q8_0")
    assert version.status == "registered", version.status_detail
    assert version.format == "gguf" and version.quantization == "q8_0"
    assert version.parameters > 0 and version.architecture["num_layers"] == 2
    assert [f.path for f in version.files.all()] == ["tiny-q8_0.gguf"]


def test_a_given_quantization_is_kept_and_a_disagreement_with_the_files_is_noted(model, local_node, safetensors_dir):
    version = imported(model, local_node, safetensors_dir, quantization="w8a8")
    assert version.quantization == "w8a8"
    assert "quantization given as w8a8; the files look like bf16" in version.status_detail


def test_a_directory_without_weights_fails_the_import_with_what_it_holds(model, local_node, tmp_path):
    directory = tmp_path / "not-a-model"
    directory.mkdir()
    (directory / "README.md").write_text("hello")
    version = imported(model, local_node, directory)
    assert version.status == "failed" and not version.import_pending
    assert "no weights in" in version.status_detail and "README.md" in version.status_detail
    assert version.files.count() == 0 and version.inspected_at is None and version.parameters is None
    assert version.status_history.get().to_status == "failed"


def test_a_missing_directory_fails_the_import(model, local_node, tmp_path):
    version = imported(model, local_node, tmp_path / "nope")
    assert version.status == "failed" and "does not exist" in version.status_detail


def test_a_lying_safetensors_header_fails_the_import_and_registers_nothing_of_the_directory(
        model, local_node, safetensors_dir):
    header = {"w": {"dtype": "BF16", "shape": [1024, 1024], "data_offsets": [0, 2 * 1024 * 1024]}}
    (safetensors_dir / "model-00002-of-00002.safetensors").write_bytes(raw_safetensors(header, b"\0" * 64))
    version = imported(model, local_node, safetensors_dir)
    assert version.status == "failed"
    assert "model-00002-of-00002.safetensors" in version.status_detail
    assert ModelFile.objects.filter(version=version).count() == 0
    assert version.parameters is None and version.size_bytes is None and version.architecture == {}


def test_a_truncated_safetensors_header_fails_the_import(model, local_node, safetensors_dir):
    (safetensors_dir / "model-00002-of-00002.safetensors").write_bytes(raw_safetensors('{"w": {"dtype"', b"",
                                                                                        declared_length=4000))
    version = imported(model, local_node, safetensors_dir)
    assert version.status == "failed" and "model-00002-of-00002.safetensors" in version.status_detail


def test_an_unreachable_node_is_retried_and_then_fails_the_import(model, db, safetensors_dir):
    from tests import factories

    node = factories.node(name="gone", address="127.0.0.1", ssh_port=1)  # no credential: cannot be reached
    version = register(model, node, safetensors_dir)
    with pytest.raises(services.NodeUnavailable):
        services.import_version(version.pk, final_attempt=False)
    version.refresh_from_db()
    assert version.import_pending and version.status == "registered"
    services.import_version(version.pk)
    version.refresh_from_db()
    assert version.status == "failed" and "no SSH credential" in version.status_detail


def test_the_import_task_is_idempotent(model, local_node, safetensors_dir):
    version = register(model, local_node, safetensors_dir)
    tasks.import_version.apply(args=[version.pk])
    first = list(ModelFile.objects.filter(version=version).values_list("pk", flat=True))
    tasks.import_version.apply(args=[version.pk])  # a re-delivered message: nothing pending, nothing done
    assert list(ModelFile.objects.filter(version=version).values_list("pk", flat=True)) == first
    assert Event.objects.filter(verb="imported", object_id=str(version.pk)).count() == 1


def test_a_failed_import_can_be_retried_once_the_directory_is_fixed(model, local_node, tmp_path):
    directory = tmp_path / "later"
    directory.mkdir()
    version = imported(model, local_node, directory)
    assert version.status == "failed"
    from tests.models_registry.conftest import write_safetensors_dir

    write_safetensors_dir(directory)
    services.request_import(version, source_uri=str(directory), node=local_node)
    services.import_version(version.pk)
    version.refresh_from_db()
    assert version.status == "registered" and version.files.count() == 4
    assert [h.to_status for h in version.status_history.all()] == ["registered", "failed"]


# --- verification ------------------------------------------------------------------------------


def test_verification_records_every_sha256_and_the_manifest_digest(model, local_node, safetensors_dir):
    version = verified(model, local_node, safetensors_dir)
    assert version.status == "verified", version.status_detail
    assert version.progress == 1.0 and version.verified_at is not None
    digests = {f.path: f.sha256 for f in version.files.all()}
    assert digests == {path: sha256_of(safetensors_dir / path) for path in digests}
    lines = "".join(f"{path} {digests[path]}\n" for path in sorted(digests))
    assert version.sha256 == hashlib.sha256(lines.encode()).hexdigest()
    assert [h.to_status for h in version.status_history.all()] == ["verified", "verifying"]


def test_progress_is_written_while_hashing_and_reaches_one(model, local_node, safetensors_dir, monkeypatch):
    with open(safetensors_dir / "blob.dat", "wb") as f:
        f.truncate(384 << 20)  # sparse: ~0.3 s of hashing
    monkeypatch.setattr(services.verification, "PROGRESS_INTERVAL_S", 0.0)
    seen = []
    real_update = ModelVersion.objects.filter

    def spy(*args, **kwargs):
        queryset = real_update(*args, **kwargs)
        if kwargs.get("status") == "verifying":
            seen.append(ModelVersion.objects.get(pk=kwargs["pk"]).progress)
        return queryset

    version = imported(model, local_node, safetensors_dir)
    services.request_verify(version)
    monkeypatch.setattr(ModelVersion.objects, "filter", spy)
    services.verify_version(version.pk)
    monkeypatch.undo()
    version.refresh_from_db()
    assert version.status == "verified" and version.progress == 1.0
    assert seen == sorted(seen) and len(seen) > 2 and 0 <= seen[0] < 1


def test_a_file_changed_after_verification_fails_the_next_verify_and_records_an_event(
        model, local_node, safetensors_dir):
    version = verified(model, local_node, safetensors_dir)
    manifest, recorded = version.sha256, {f.path: f.sha256 for f in version.files.all()}
    target = safetensors_dir / "model-00001-of-00002.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # same size, one bit of the weights flipped
    target.write_bytes(bytes(data))
    services.request_verify(version)
    services.verify_version(version.pk)
    version.refresh_from_db()
    assert version.status == "failed"
    assert "model-00001-of-00002.safetensors: sha256 differs from the verified manifest" in version.status_detail
    assert "1 of 4 files" in version.status_detail
    # The verified manifest is immutable: neither the digests nor the manifest sha256 changed.
    assert version.sha256 == manifest and {f.path: f.sha256 for f in version.files.all()} == recorded
    event = Event.objects.get(verb="integrity", object_id=str(version.pk))
    assert "model-00001-of-00002.safetensors" in event.detail["files"]
    # Re-importing cannot launder the change into a new manifest.
    with pytest.raises(services.Conflict, match="immutable"):
        services.request_import(version, source_uri=str(safetensors_dir), node=local_node)
    # Restoring the file makes it verify again against the same manifest.
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    services.request_verify(version)
    services.verify_version(version.pk)
    version.refresh_from_db()
    assert version.status == "verified" and version.sha256 == manifest


def test_a_missing_file_fails_verification_naming_it(model, local_node, safetensors_dir):
    version = imported(model, local_node, safetensors_dir)
    (safetensors_dir / "tokenizer.json").unlink()
    services.request_verify(version)
    services.verify_version(version.pk)
    version.refresh_from_db()
    assert version.status == "failed" and "tokenizer.json: file is missing" in version.status_detail
    assert all(f.sha256 == "" for f in version.files.all())  # nothing half-verified


def test_a_file_modified_while_it_is_hashed_fails_verification_naming_it(model, local_node, safetensors_dir):
    big = safetensors_dir / "extra" / "blob.dat"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(512 << 20)
    version = imported(model, local_node, safetensors_dir)
    services.request_verify(version)

    def change(line):
        if line.startswith("@@progress extra/blob.dat 0 "):
            with open(big, "ab") as f:
                f.write(b"appended while hashing")

    services.verify_version(version.pk, on_event=change)
    version.refresh_from_db()
    assert version.status == "failed"
    assert "extra/blob.dat: changed while it was hashed" in version.status_detail


def test_a_file_changed_between_import_and_first_verification_fails_it(model, local_node, safetensors_dir):
    version = imported(model, local_node, safetensors_dir)
    with open(safetensors_dir / "tokenizer.json", "a") as f:
        f.write(" ")
    services.request_verify(version)
    services.verify_version(version.pk)
    version.refresh_from_db()
    assert version.status == "failed" and "tokenizer.json: changed since the import" in version.status_detail


def test_verify_refuses_versions_without_files_or_already_verifying(model, local_node, safetensors_dir):
    hub = services.register_version(model=model, version="hub", source_uri="hf://org/name", quantization="bf16")
    with pytest.raises(services.Conflict, match="no directory on a node"):
        services.request_verify(hub)
    pending = register(model, local_node, safetensors_dir, version="pending")
    with pytest.raises(services.Conflict, match="still being imported"):
        services.request_verify(pending)
    version = imported(model, local_node, safetensors_dir, version="ready")
    services.request_verify(version)
    with pytest.raises(services.Conflict, match="already being verified"):
        services.request_verify(version)


def test_a_verification_that_stopped_reporting_may_be_restarted(model, local_node, safetensors_dir, settings):
    version = imported(model, local_node, safetensors_dir)
    services.request_verify(version)
    settings.CONSOLE_VERIFY_STALE_S = 0
    services.request_verify(version)  # the worker died: no progress since
    services.verify_version(version.pk)
    version.refresh_from_db()
    assert version.status == "verified"


def test_the_verify_task_does_nothing_unless_the_version_is_verifying(model, local_node, safetensors_dir):
    version = verified(model, local_node, safetensors_dir)
    history = version.status_history.count()
    tasks.verify_version.apply(args=[version.pk])
    assert version.status_history.count() == history


def test_verification_over_an_unreachable_node_fails_with_the_reason(model, local_node, safetensors_dir, monkeypatch):
    version = imported(model, local_node, safetensors_dir)
    services.request_verify(version)

    def unreachable(*args, **kwargs):
        raise NodeCommandError("connection to 10.0.0.9:22 refused")

    monkeypatch.setattr(LocalTransport, "stream", unreachable)
    services.verify_version(version.pk)
    version.refresh_from_db()
    assert version.status == "failed" and "connection to 10.0.0.9:22 refused" in version.status_detail


def test_files_keep_their_names_even_with_spaces_and_shell_characters(model, local_node, tmp_path):
    from tests.models_registry.conftest import write_safetensors_dir

    directory = write_safetensors_dir(tmp_path / "dir $(touch pwned) 'q'")
    (directory / "notes; rm -rf x.txt").write_text("x")
    version = verified(model, local_node, directory)
    assert version.status == "verified", version.status_detail
    assert version.files.filter(path="notes; rm -rf x.txt").exclude(sha256="").exists()
    assert not os.path.exists("pwned")

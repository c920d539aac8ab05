"""The node-side inspect program, run for real with subprocess on directories the tests write."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from safetensors.numpy import save_file

from models_registry.inspection import InspectionFailed, InvalidWeightsFile, NoWeights
from models_registry.inspection.directory import parse_inspect_output, weight_format
from models_registry.inspection.remote import _BOOTSTRAP, _INSPECT_B64, inspect_command, remote_command_line
from tests.models_registry import old_pythons, raw_safetensors, write_tiny_gguf, write_zero_safetensors
from tests.models_registry.test_config import DEEPSEEK_V3, LLAMA_3_1_8B


def run_inspect(directory, *, through_shell=False, env=None) -> str:
    argv = inspect_command(str(directory))
    if through_shell:  # what an SSH server does with the command string it receives
        argv = ["sh", "-c", remote_command_line(argv)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert result.stderr == ""
    return result.stdout


def inspect(directory, **kwargs):
    return parse_inspect_output(run_inspect(directory, **kwargs))


def write_sharded_llama(directory):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(LLAMA_3_1_8B))
    write_zero_safetensors(directory / "model-00001-of-00002.safetensors",
                           {"model.embed_tokens.weight": ("BF16", [128, 64]), "model.norm.weight": ("F32", [64])})
    write_zero_safetensors(directory / "model-00002-of-00002.safetensors", {"lm_head.weight": ("BF16", [128, 64])})
    index = {"metadata": {"total_size": 0}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.norm.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors"}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    (directory / "tokenizer.json").write_text("{}")
    return directory


def test_a_sharded_safetensors_directory_is_counted_from_its_headers(tmp_path):
    result = inspect(write_sharded_llama(tmp_path / "llama"))
    assert result.format == "safetensors"
    assert result.parameters == 128 * 64 * 2 + 64
    assert result.dtype == "bf16" and result.quantization == "bf16"
    assert result.config.num_kv_heads == 8 and result.config.num_layers == 32
    assert {f["path"] for f in result.files} == {
        "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json", "tokenizer.json"}
    sizes = {f["path"]: f["size"] for f in result.files}
    assert sizes["config.json"] == (tmp_path / "llama" / "config.json").stat().st_size
    assert all(isinstance(f["mtime"], float) for f in result.files)
    assert result.errors == []
    assert result.weight_bytes == sum(w.size for w in result.weights)
    assert result.to_dict()["weights"][0]["header"]["parameters"] == 128 * 64 + 64


def test_a_file_written_by_the_safetensors_package_is_read_on_the_node(tmp_path):
    save_file({"w": np.zeros((8, 8), dtype=np.float16)}, str(tmp_path / "model.safetensors"))
    result = inspect(tmp_path)
    assert result.parameters == 64 and result.dtype == "fp16" and result.config is None
    assert result.quantization == "fp16"


def test_a_gguf_directory_gets_its_quantization_and_architecture_from_the_gguf_metadata(tmp_path):
    import gguf

    path = write_tiny_gguf(tmp_path / "tiny-Q8_0.gguf")
    result = inspect(tmp_path)
    reference = gguf.GGUFReader(str(path))
    assert result.format == "gguf"
    assert result.parameters == sum(int(t.n_elements) for t in reference.tensors)
    assert result.quantization == "q8_0" and result.dtype == "q8_0"
    assert result.config.architecture == "llama" and result.config.num_kv_heads == 2
    assert result.errors == []


def test_a_gguf_header_larger_than_one_mebibyte_travels_whole(tmp_path):
    write_tiny_gguf(tmp_path / "big-vocab.gguf", vocab=60000, token_prefix="a-rather-long-token-")
    output = run_inspect(tmp_path)
    document = json.loads(output.removeprefix("@@inspect "))
    assert len(base64.b64decode(document["headers"]["big-vocab.gguf"]["prefix"])) > 1 << 20
    result = parse_inspect_output(output)
    assert result.errors == [] and result.config.vocab_size == 60000


def test_a_truncated_safetensors_file_is_named_with_its_sizes(tmp_path):
    good = write_zero_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"w": ("BF16", [64, 64])})
    data = good.read_bytes()
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(data[:40])
    result = inspect(tmp_path)
    assert result.parameters is None
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.startswith("model-00002-of-00002.safetensors: safetensors header is truncated")
    assert str(len(data) - 8 - 8192) in error and "file has 40" in error
    with pytest.raises(InvalidWeightsFile, match="model-00002-of-00002"):
        result.raise_for_errors()


def test_a_lying_safetensors_header_is_named_with_its_sizes(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}
    (tmp_path / "model.safetensors").write_bytes(raw_safetensors(header, b"\0" * 64))
    result = inspect(tmp_path)
    assert result.parameters is None
    assert "data is truncated" in result.errors[0] and "4000" in result.errors[0] and "64" in result.errors[0]


def test_a_header_length_of_eighteen_exabytes_is_refused_without_reading(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    result = inspect(tmp_path)
    assert "exceeds the limit" in result.errors[0]


def test_a_shard_listed_in_the_index_but_absent_is_an_error(tmp_path):
    directory = write_sharded_llama(tmp_path / "llama")
    (directory / "model-00002-of-00002.safetensors").unlink()
    result = inspect(directory)
    assert result.errors == [
        "model.safetensors.index.json: references missing shard(s) model-00002-of-00002.safetensors"
    ]


def test_a_directory_without_weights_is_refused_with_what_it_holds(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "README.md").write_text("hello")
    (tmp_path / "training_args.bin").write_bytes(b"\0" * 10)
    with pytest.raises(NoWeights) as info:
        inspect(tmp_path)
    message = str(info.value)
    assert message.startswith(f"no weights in {tmp_path}: found ")
    assert "README.md" in message and "config.json" in message and "*.safetensors" in message


def test_an_empty_directory_is_refused(tmp_path):
    with pytest.raises(NoWeights, match="holds no files"):
        inspect(tmp_path)


def test_a_missing_directory_fails_the_inspection(tmp_path):
    with pytest.raises(InspectionFailed, match="does not exist"):
        inspect(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InspectionFailed, match="is not a directory"):
        inspect(tmp_path / "file")


@pytest.mark.parametrize("through_shell", [False, True], ids=["argv", "ssh-command-line"])
def test_a_directory_named_with_spaces_and_command_substitution_is_only_a_name(tmp_path, through_shell):
    sentinel = tmp_path / "pwned"
    directory = tmp_path / "my models $(touch $SENTINEL) `touch $SENTINEL` ; touch $SENTINEL"
    directory.mkdir()
    save_file({"w": np.zeros(4, dtype=np.float32)}, str(directory / "model.safetensors"))
    result = inspect(directory, through_shell=through_shell, env=os.environ | {"SENTINEL": str(sentinel)})
    assert result.directory == str(directory)
    assert result.parameters == 4
    assert not sentinel.exists()


def test_symlinked_files_are_followed_dot_directories_skipped_and_broken_links_reported(tmp_path):
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    write_zero_safetensors(blobs / "abc123", {"w": ("BF16", [4, 4])})
    snapshot = tmp_path / "snapshot"
    (snapshot / ".cache" / "huggingface").mkdir(parents=True)
    (snapshot / ".cache" / "huggingface" / "x.safetensors").write_bytes(b"junk")
    (snapshot / "model.safetensors").symlink_to(blobs / "abc123")
    (snapshot / "gone.json").symlink_to(tmp_path / "does-not-exist")
    result = inspect(snapshot)
    assert [f["path"] for f in result.files] == ["model.safetensors"]
    assert result.parameters == 16
    assert result.errors == ["gone.json: broken symbolic link"]


def test_an_msmodelslim_w8a8_export_is_recognised(tmp_path):
    config = dict(DEEPSEEK_V3, quantization_config=None)
    (tmp_path / "config.json").write_text(json.dumps(config))
    write_zero_safetensors(tmp_path / "quant_model_weight_w8a8.safetensors",
                           {"a.weight": ("I8", [64, 64]), "a.deq_scale": ("F32", [64])})
    (tmp_path / "quant_model_description_w8a8.json").write_text(
        json.dumps({"model_quant_type": "W8A8", "a.weight": "W8A8"}))
    result = inspect(tmp_path)
    assert result.quantization == "w8a8" and result.dtype == "int8"
    assert result.config.is_mla


def test_the_quantization_config_of_config_json_names_the_quantization(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(DEEPSEEK_V3))
    write_zero_safetensors(tmp_path / "model.safetensors", {"w": ("F8_E4M3", [16, 16])})
    assert inspect(tmp_path).quantization == "fp8"


def test_pytorch_checkpoints_are_listed_without_a_parameter_count(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    result = inspect(tmp_path)
    assert result.format == "pytorch" and result.parameters is None and result.errors == []


def test_several_gguf_models_in_one_directory_are_flagged(tmp_path):
    write_tiny_gguf(tmp_path / "m-Q8_0.gguf")
    write_tiny_gguf(tmp_path / "m-other.gguf")
    result = inspect(tmp_path)
    assert any("2 different GGUF models" in e for e in result.errors)


def test_a_broken_config_json_is_an_error_but_the_weights_are_still_read(tmp_path):
    (tmp_path / "config.json").write_text("{broken")
    write_zero_safetensors(tmp_path / "model.safetensors", {"w": ("BF16", [2])})
    result = inspect(tmp_path)
    assert result.config is None and result.parameters == 2
    assert result.errors[0].startswith("config.json: config.json is not valid JSON")


def test_output_without_a_result_line_fails_clearly():
    with pytest.raises(InspectionFailed, match="no inspection result: bash: python3: command not found"):
        parse_inspect_output("bash: python3: command not found\n")
    with pytest.raises(InspectionFailed, match="unreadable"):
        parse_inspect_output("@@inspect {truncated")


def test_a_node_without_python_says_so(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sh").symlink_to(shutil.which("sh"))
    output = run_inspect(tmp_path, env={"PATH": str(bin_dir)})
    with pytest.raises(InspectionFailed, match="neither python3 nor python"):
        parse_inspect_output(output)


@pytest.mark.parametrize("python", old_pythons() or [pytest.param(None, marks=pytest.mark.skip("no old Python"))])
def test_the_inspect_program_runs_on_old_pythons(tmp_path, python):
    directory = write_sharded_llama(tmp_path / "llama ü")
    (directory / "sub").mkdir()
    write_tiny_gguf(directory / "sub" / "extra.gguf")
    output = subprocess.run([python, "-c", _BOOTSTRAP, _INSPECT_B64, str(directory)],
                            capture_output=True, text=True, timeout=120)
    assert output.returncode == 0, output.stderr
    assert parse_inspect_output(output.stdout) == parse_inspect_output(run_inspect(directory))


def test_weight_formats_are_told_by_their_names():
    assert weight_format("a/model-00001-of-00163.safetensors") == "safetensors"
    assert weight_format("DeepSeek-R1-Q4_K_M.GGUF") == "gguf"
    assert weight_format("original/consolidated.00.pth") == "pytorch"
    assert weight_format("mindie/model.om") == "om"
    assert weight_format("optimizer.pt") is None and weight_format("README.md") is None


def test_inspect_command_keeps_the_directory_as_its_own_argument():
    argv = inspect_command("/data/models/a b;rm -rf x")
    assert argv[-1] == "/data/models/a b;rm -rf x"
    assert all("/data/models" not in part for part in argv[:-1])
    with pytest.raises(ValueError):
        inspect_command("")
    with pytest.raises(ValueError):
        inspect_command("/x\0y")


def test_a_garbled_result_is_an_error_not_a_crash():
    files = [{"path": "model.safetensors", "size": 10, "mtime": 1.0}]
    garbled = {"directory": "/m", "files": files, "headers": {"model.safetensors": {"prefix": "%%%"}}}
    result = parse_inspect_output("@@inspect " + json.dumps(garbled))
    assert result.errors == ["model.safetensors: header bytes were garbled on the way from the node"]
    with pytest.raises(InspectionFailed, match="malformed file list"):
        parse_inspect_output("@@inspect " + json.dumps({"directory": "/m", "files": [{"path": "a"}]}))
    odd = {"directory": "/m", "files": files, "headers": [], "texts": "x", "errors": "y"}
    assert parse_inspect_output("@@inspect " + json.dumps(odd)).errors == [
        "model.safetensors: header was not read"]

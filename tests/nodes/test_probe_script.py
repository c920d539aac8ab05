"""The probe script run for real with bash against fake tools, and parse_probe_output on bad input.

The fake tools (tests/fakes/bin) print the recorded captures, so these tests see what a node with
8 H100s and 8 Ascend 910B3s would print.
"""

import dataclasses
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nodes.probes.result import ProbeResult, parse_probe_output, split_sections
from nodes.probes.script import NPU_SMI_DIRS, NVIDIA_SMI_DIRS, PROBE_SCRIPT
from tests.timing import scaled

TESTS = Path(__file__).resolve().parents[1]
FAKE_BIN = TESTS / "fakes" / "bin"
NVIDIA_FIXTURES = TESTS / "fixtures" / "nvidia-smi"
NPU_FIXTURES = TESTS / "fixtures" / "npu-smi"
BASH = shutil.which("bash") or "/bin/bash"
# What the script and the fakes use from PATH, for tests that build a PATH without the real tools.
BASIC_TOOLS = ("bash", "sh", "uname", "nproc", "getconf", "df", "lscpu", "timeout", "mktemp", "rm", "cat",
               "dirname")

HOST_HAS_REAL_TOOLS = any(
    os.access(Path(directory) / tool, os.X_OK)
    for tool, directories in (("nvidia-smi", NVIDIA_SMI_DIRS), ("npu-smi", NPU_SMI_DIRS))
    for directory in directories
)
needs_toolless_host = pytest.mark.skipif(
    HOST_HAS_REAL_TOOLS, reason="this host has a real nvidia-smi or npu-smi where the probe looks for one"
)


def run_probe(path: str, *, mode: str = "-s", **env: str) -> tuple[str, ProbeResult]:
    """Run PROBE_SCRIPT with ``bash -s`` (stdin, as over SSH) or ``bash -c``; return stdout and its parse."""
    environment = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **env}
    if mode == "-s":
        argv, stdin = [BASH, "-s"], PROBE_SCRIPT
    else:
        argv, stdin = [BASH, "-c", PROBE_SCRIPT], None
    completed = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=environment,
                               timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout, parse_probe_output(completed.stdout)


@pytest.fixture
def basic_bin(tmp_path):
    """A directory with links to the basic tools only: a host with no accelerator tools on PATH."""
    directory = tmp_path / "basic-bin"
    directory.mkdir()
    for tool in BASIC_TOOLS:
        if found := shutil.which(tool):
            (directory / tool).symlink_to(found)
    # The fake nvidia-smi runs on python3; link the real interpreter (a pyenv shim would need pyenv).
    (directory / "python3").symlink_to(os.path.realpath(sys.executable))
    return directory


def write_tool(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(exist_ok=True)
    tool = directory / name
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(0o755)
    return tool


def with_fakes() -> str:
    return f"{FAKE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"


# --- the script with the fake tools ------------------------------------------------------------------


def test_a_node_with_the_fake_tools_shows_eight_h100s_and_eight_910b3s_without_errors():
    _, result = run_probe(with_fakes())

    assert result.errors == []
    gpus = [a for a in result.accelerators if a.vendor == "nvidia"]
    npus = [a for a in result.accelerators if a.vendor == "huawei"]
    assert [g.index for g in gpus] == list(range(8))
    assert {g.model for g in gpus} == {"NVIDIA H100 80GB HBM3"}
    assert len({g.uuid for g in gpus}) == 8
    assert gpus[0].memory_total_bytes == 81559 * 1024 * 1024
    assert [n.index for n in npus] == list(range(8))
    assert {n.model for n in npus} == {"910B3"}
    assert {n.extra["index_source"] for n in npus} == {"npu-smi info -m"}
    assert result.facts["nvidia_driver_version"] == "590.48.01"
    assert result.facts["cuda_version"] == "13.1"
    assert result.facts["nvidia_smi_version"] == "590.48.01"
    assert result.facts["npu_smi_version"] == "23.0.7"


def test_the_probe_reports_sane_host_facts():
    _, result = run_probe(with_fakes())
    facts = result.facts

    assert facts["hostname"] == socket.gethostname()
    assert facts["arch"] == platform.machine()
    assert facts["kernel"] == platform.release()
    assert facts["cpu_cores"] >= 1
    assert facts["memory_total_bytes"] > 0
    assert 0 < facts["memory_available_bytes"] <= facts["memory_total_bytes"]
    assert len(facts["load"]) == 3
    assert facts["os"]
    assert all(disk["mount"].startswith("/") and disk["total_bytes"] >= 0 for disk in facts["disks"])


def test_the_probe_is_quick_and_never_sleeps():
    started = time.monotonic()
    run_probe(with_fakes())

    assert "sleep" not in PROBE_SCRIPT
    assert time.monotonic() - started < scaled(10, below=20)  # a tool's timeout is 20 s


def test_the_result_is_json_serialisable_for_the_database():
    _, result = run_probe(with_fakes())

    json.dumps(dataclasses.asdict(result))


def test_the_script_also_runs_with_bash_c():
    _, result = run_probe(with_fakes(), mode="-c")

    assert result.errors == []
    assert len(result.accelerators) == 16


def test_the_fake_tools_follow_their_environment():
    _, result = run_probe(
        with_fakes(),
        BOOM_FAKE_NVIDIA_SMI_COUNT="2",
        BOOM_FAKE_NPU_SMI_INFO=str(NPU_FIXTURES / "info_atlas800-infer-3000_310x4_npu-smi-21.0.4_huawei-doc.txt"),
        BOOM_FAKE_NPU_SMI_INFO_M=str(NPU_FIXTURES / "info-m_atlas800-infer-3000_310_npu-smi-21.0.4_huawei-doc.txt"),
    )

    assert result.errors == []
    assert [(a.vendor, a.index, a.model) for a in result.accelerators] == [
        ("nvidia", 0, "NVIDIA H100 80GB HBM3"), ("nvidia", 1, "NVIDIA H100 80GB HBM3"),
        ("huawei", 0, "310"), ("huawei", 1, "310"), ("huawei", 2, "310"), ("huawei", 3, "310"),
    ]
    assert result.facts["npu_smi_version"] == "21.0.4.B030"


# --- hosts without tools, or with broken ones ----------------------------------------------------------


@needs_toolless_host
def test_a_host_without_accelerator_tools_yields_no_accelerators_and_no_errors(basic_bin):
    stdout, result = run_probe(str(basic_bin))

    assert result.accelerators == []
    assert result.errors == []
    assert "@@boom:missing nvidia-smi@@" in stdout
    assert "@@boom:missing npu-smi@@" in stdout
    assert result.facts["hostname"] == socket.gethostname()


@needs_toolless_host
def test_a_host_with_no_usable_path_still_reports_what_bash_alone_can_read():
    _, result = run_probe("/nonexistent")

    assert result.errors == []
    assert result.accelerators == []
    assert result.facts["hostname"] == socket.gethostname()  # from /proc/sys/kernel/hostname
    assert result.facts["memory_total_bytes"] > 0
    assert result.facts["cpu_cores"] >= 1  # counted from /proc/cpuinfo
    assert result.facts["arch"] == platform.machine()  # bash's $HOSTTYPE
    assert result.facts["disks"] == []  # no df


def test_an_npu_smi_printing_garbage_yields_an_error_naming_npu_smi(basic_bin, tmp_path):
    write_tool(tmp_path / "bin", "npu-smi", "echo 'garbage: the quick brown fox'\n")

    _, result = run_probe(f"{tmp_path / 'bin'}{os.pathsep}{basic_bin}")

    assert [a for a in result.accelerators if a.vendor == "huawei"] == []
    [error] = [e for e in result.errors if "npu-smi" in e]
    assert error.startswith("npu-smi ")
    assert "unrecognised output layout: 'garbage: the quick brown fox'" in error


def test_a_failing_npu_smi_reports_its_exit_status_and_message(basic_bin, tmp_path):
    write_tool(tmp_path / "bin", "npu-smi",
               "echo 'dcmi model initialized failed, because the device is used. ret is -8020' >&2\nexit 255\n")

    _, result = run_probe(f"{tmp_path / 'bin'}{os.pathsep}{basic_bin}")

    assert any(e.endswith("'info' exited with status 255: dcmi model initialized failed, because the device "
                          "is used. ret is -8020") for e in result.errors), result.errors


def test_a_tool_that_reads_stdin_cannot_swallow_the_script(basic_bin, tmp_path):
    # bash -s reads the script from stdin; a tool inheriting it would eat the rest of the script.
    write_tool(tmp_path / "bin", "npu-smi", "cat > /dev/null\necho garbage\n")

    stdout, result = run_probe(f"{tmp_path / 'bin'}{os.pathsep}{basic_bin}")

    assert "@@boom:end@@" in stdout
    assert "@@boom:rc npu-smi-info-m 0@@" in stdout
    assert not any("cut short" in e for e in result.errors)


def test_an_nvidia_smi_without_a_driver_reports_why(basic_bin, tmp_path):
    write_tool(tmp_path / "bin", "nvidia-smi",
               "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"\nexit 9\n")

    _, result = run_probe(f"{tmp_path / 'bin'}{os.pathsep}{basic_bin}")

    assert result.accelerators == []
    assert result.errors == [
        "nvidia-smi (unknown version): '--query-gpu' exited with status 9: NVIDIA-SMI has failed because it "
        "couldn't communicate with the NVIDIA driver."
    ]


def test_an_old_nvidia_smi_without_version_flag_gives_versions_from_its_table_banner(basic_bin, tmp_path):
    write_tool(tmp_path / "bin", "nvidia-smi",
               'if [ "$1" = "--version" ]; then\n'
               "  echo \"Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\"; exit 2\n"
               f'fi\nexec "{FAKE_BIN / "nvidia-smi"}" "$@"\n')

    stdout, result = run_probe(f"{tmp_path / 'bin'}{os.pathsep}{basic_bin}")

    assert "@@boom:nvidia-smi-table@@" in stdout
    assert result.errors == []
    assert result.facts["nvidia_driver_version"] == "590.48.01"
    assert result.facts["cuda_version"] == "13.1"
    assert len(result.accelerators) == 8


def test_a_driver_that_rejects_the_health_fields_is_queried_again_with_the_basic_fields(basic_bin, tmp_path):
    write_tool(tmp_path / "bin", "nvidia-smi",
               'case "$*" in *remapped_rows*)\n'
               '  echo \'Field "remapped_rows.pending" is not a valid field to query.\'; exit 2 ;;\nesac\n'
               f'exec "{FAKE_BIN / "nvidia-smi"}" "$@"\n')

    stdout, result = run_probe(f"{tmp_path / 'bin'}{os.pathsep}{basic_bin}")

    assert "@@boom:rc nvidia-smi-query 2@@" in stdout
    assert result.errors == []
    assert len(result.accelerators) == 8
    assert result.accelerators[0].extra["pstate"] == "P0"


# --- parse_probe_output on its own ---------------------------------------------------------------------


def probe_output(**sections: str) -> str:
    """Probe output with the given tool sections, as the script prints it."""
    lines = ["@@boom:probe 1@@", "@@boom:uname@@", "nodename=n1", "release=6.1.0", "machine=x86_64"]
    if "nvidia" in sections:
        lines += ["@@boom:tool nvidia-smi /usr/bin/nvidia-smi@@", "@@boom:nvidia-smi-version@@",
                  "DRIVER version      : 590.48.01", "@@boom:rc nvidia-smi-version 0@@",
                  "@@boom:nvidia-smi-query@@", sections["nvidia"], "@@boom:rc nvidia-smi-query 0@@"]
    if "npu" in sections:
        lines += ["@@boom:tool npu-smi /usr/local/sbin/npu-smi@@", "@@boom:npu-smi-info@@", sections["npu"],
                  "@@boom:rc npu-smi-info 0@@", "@@boom:npu-smi-info-m@@", sections.get("npu_map", ""),
                  "@@boom:rc npu-smi-info-m 0@@"]
    return "\n".join(lines + ["@@boom:end@@", ""])


def test_text_before_the_first_marker_is_ignored_and_a_retried_section_keeps_its_last_run():
    raw = split_sections("Welcome to node 7!\n@@boom:probe 1@@\n@@boom:x@@\nfirst\n@@boom:stderr x@@\noops\n"
                         "@@boom:rc x 2@@\n@@boom:x@@\nsecond\n@@boom:rc x 0@@\n@@boom:end@@\n")

    assert raw.format_version == "1"
    assert raw.complete
    assert raw.sections == {"x": "second"}
    assert raw.exit_codes == {"x": 0}
    assert raw.stderr == {}


def test_output_that_is_not_probe_output_is_an_error_not_an_exception():
    result = parse_probe_output("bash: line 1: syntax error near unexpected token\n")

    assert result.accelerators == []
    assert result.facts["hostname"] is None
    assert result.errors == ["the probe printed no probe output: 'bash: line 1: syntax error near unexpected "
                             "token'"]


def test_output_without_the_end_marker_says_it_was_cut_short():
    result = parse_probe_output(probe_output().replace("@@boom:end@@", ""))

    assert result.facts["hostname"] == "n1"
    assert result.errors == ["the probe output was cut short (no end marker): results may be incomplete"]


def test_npu_smi_garbage_error_names_the_driver_version_when_the_table_does_not():
    text = probe_output(npu="garbage").replace("@@boom:end@@",
                                               "@@boom:ascend-driver-version-info@@\nVersion=24.1.rc2\n@@boom:end@@")
    result = parse_probe_output(text)

    assert result.errors == ["npu-smi 24.1.rc2: unrecognised output layout: 'garbage'"]


def test_a_parser_crash_becomes_an_error_string(monkeypatch):
    from nodes.probes.parsers import nvidia_smi

    def explode(*args, **kwargs):
        raise IndexError("boom")

    monkeypatch.setattr(nvidia_smi, "parse_query_gpu", explode)
    result = parse_probe_output(probe_output(nvidia="index\n0"))

    assert result.errors == ["nvidia-smi 590.48.01: output could not be parsed (IndexError: boom)"]


CAPTURES = sorted(NVIDIA_FIXTURES.iterdir()) + sorted(NPU_FIXTURES.iterdir())


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.name)
def test_truncated_captures_never_raise(capture):
    """Every capture, in every tool section, cut at many points: errors are data, never exceptions."""
    text = capture.read_text(encoding="utf-8")[:20000]
    full = probe_output(nvidia=text, npu=text, npu_map=text)
    step = max(1, len(full) // 150)
    cuts = set(range(0, len(full), step)) | {n for n, char in enumerate(full) if char == "\n"}
    for cut in sorted(cuts):
        result = parse_probe_output(full[:cut])
        assert isinstance(result, ProbeResult)
        assert all(isinstance(error, str) for error in result.errors)
        json.dumps(dataclasses.asdict(result))


@pytest.mark.parametrize("junk", ["", "\x00\x01\x02", "@@boom:probe 1@@\n@@boom:rc@@\n@@boom:tool@@\n@@boom:rc x y@@",
                                  "@@boom:probe 1@@\n@@boom:tool nvidia-smi /x@@\n@@boom:tool npu-smi /y@@\n",
                                  "@@boom:probe 1@@\n" + "|" * 5000])
def test_junk_probe_output_never_raises(junk):
    result = parse_probe_output(junk)

    assert isinstance(result, ProbeResult)
    assert result.errors


def test_the_programs_shipped_to_nodes_are_files_with_every_placeholder_filled_in():
    import re

    from nodes.probes.sampler import SAMPLER_SCRIPT

    here = Path(__file__).resolve().parents[2] / "nodes" / "probes"
    assert PROBE_SCRIPT.startswith((here / "probe.sh").read_text().split("\n", 1)[0])
    assert SAMPLER_SCRIPT.startswith((here / "sampler.sh").read_text().split("\n", 1)[0])
    for script in (PROBE_SCRIPT, SAMPLER_SCRIPT):
        assert not re.search(r"__[A-Z_]+__", script)

"""nvidia-smi parsers against recorded outputs (tests/fixtures/nvidia-smi, provenance in SOURCES.md)."""

import re
from pathlib import Path

import pytest

from nodes.probes.parsers import nvidia_smi
from nodes.probes.parsers.common import ParseError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia-smi"
MIB = 1024 * 1024
H100 = "h100-80gb-hbm3_590.48.01"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def bundle_section(command: str, occurrence: int = 0) -> str:
    """One command's output from the capture bundle (sections headed ``# $ nvidia-smi ARGS``)."""
    pattern = re.compile(r"^# \$ nvidia-smi " + re.escape(command) + r"\s*\n#+\n(?P<body>.*?)(?=\n\n\n#+\n|\Z)",
                         re.MULTILINE | re.DOTALL)
    return list(pattern.finditer(fixture(f"capture-bundle_{H100}_nvidia_gpu_exporter.txt")))[occurrence]["body"]


# --- --query-gpu CSV -------------------------------------------------------------------------------


def test_the_all_fields_capture_yields_one_h100_with_memory_in_bytes():
    [gpu] = nvidia_smi.parse_query_gpu(fixture(f"query-gpu-csv-allfields_load_{H100}.csv"))

    assert gpu.index == 0
    assert (gpu.vendor, gpu.kind) == ("nvidia", "gpu")
    assert gpu.model == "NVIDIA H100 80GB HBM3"
    assert gpu.uuid == "GPU-00000000-0000-0000-0000-000000000000"
    assert gpu.bus_id == "00000000:00:09.0"
    assert gpu.memory_total_bytes == 81559 * MIB
    assert gpu.memory_used_bytes == 19818 * MIB
    assert gpu.utilization_percent == 100.0
    assert gpu.temperature_c == 59.0
    assert gpu.power_w == 631.95
    assert gpu.health == "ok"
    assert gpu.extra["pstate"] == "P0"
    assert gpu.extra["driver_version"] == "590.48.01"
    assert gpu.extra["compute_cap"] == "9.0"
    assert gpu.extra["power.limit"] == 700.0
    assert gpu.extra["remapped_rows.pending"] == "No"
    assert "retired_pages.pending" not in gpu.extra  # [N/A] on this GPU


def test_the_all_fields_header_is_mapped_by_name_with_units_stripped():
    table = nvidia_smi.parse_csv(fixture(f"query-gpu-csv-allfields_load_{H100}.csv"))

    assert len(table.fields) == 212
    assert table.units["memory.total"] == "MiB"
    assert table.units["power.draw"] == "W"
    assert "temperature.gpu" not in table.units
    assert table.rows[0]["clocks.max.sm"] == "1980 MHz"
    assert table.rows[0]["platform.peer_type"] == "Direct Connected"


def test_the_probe_query_is_mapped_by_header_name_in_any_column_order():
    text = (
        "power.draw [W], memory.used [MiB], name, index, memory.total [MiB], uuid, pci.bus_id, "
        "utilization.gpu [%], temperature.gpu, pstate, driver_version\n"
        "69.12 W, 0 MiB, NVIDIA H100 80GB HBM3, 3, 81559 MiB, GPU-abc, 00000000:00:09.0, 0 %, 41, P0, 590.48.01\n"
    )
    [gpu] = nvidia_smi.parse_query_gpu(text)

    assert gpu.index == 3
    assert gpu.power_w == 69.12
    assert gpu.memory_used_bytes == 0
    assert gpu.memory_total_bytes == 81559 * MIB
    assert gpu.temperature_c == 41.0
    assert gpu.uuid == "GPU-abc"


def test_noheader_nounits_output_parses_with_the_field_list_given():
    fields = ["index", "memory.total", "memory.used", "utilization.gpu", "power.draw"]
    gpus = nvidia_smi.parse_query_gpu("0, 81559, 19818, 100, 631.95\n1, 81559, 0, 0, 69.00\n", fields=fields)

    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0].memory_used_bytes == 19818 * MIB  # MiB is nvidia-smi's unit when none is printed
    assert gpus[1].power_w == 69.0


@pytest.mark.parametrize("missing", ["[N/A]", "N/A", "[Not Supported]", "NA", "-", "",
                                     "[Requested functionality has been deprecated]"])
def test_every_spelling_of_no_value_becomes_none(missing):
    text = ("index, name, memory.total [MiB], memory.used [MiB], utilization.gpu [%], temperature.gpu, "
            "power.draw [W]\n"
            f"0, Tesla T4, {missing}, {missing}, {missing}, {missing}, {missing}\n")
    [gpu] = nvidia_smi.parse_query_gpu(text)

    assert gpu.model == "Tesla T4"
    assert gpu.memory_total_bytes is None
    assert gpu.memory_used_bytes is None
    assert gpu.utilization_percent is None
    assert gpu.temperature_c is None
    assert gpu.power_w is None


def test_columns_the_query_did_not_ask_for_are_none_and_rows_without_index_count_from_zero():
    gpus = nvidia_smi.parse_query_gpu("uuid, name\nGPU-a, A100\nGPU-b, A100\n")

    assert [(g.index, g.uuid) for g in gpus] == [(0, "GPU-a"), (1, "GPU-b")]
    assert gpus[0].memory_total_bytes is None
    assert gpus[0].bus_id is None
    assert gpus[0].health == "ok"


def test_newer_drivers_power_instant_is_used_when_power_draw_is_missing():
    [gpu] = nvidia_smi.parse_query_gpu("index, power.draw [W], power.draw.instant [W]\n0, [N/A], 88.5 W\n")

    assert gpu.power_w == 88.5


HEALTH_HEADER = ("index, ecc.errors.uncorrected.volatile.total, retired_pages.pending, remapped_rows.pending, "
                 "remapped_rows.failure, temperature.gpu\n")


@pytest.mark.parametrize(
    ("row", "health", "reason"),
    [
        ("0, 0, No, No, No, 40", "ok", None),
        ("0, [N/A], [N/A], [N/A], [N/A], 40", "ok", None),
        ("0, 0, Yes, No, No, 40", "warning", "retired pages pending"),
        ("0, 0, No, Yes, No, 40", "warning", "remapped rows pending"),
        ("0, 3, No, No, No, 40", "warning", "3 uncorrected volatile ECC errors"),
        ("0, 0, No, No, No, [Unknown Error]", "warning", "nvidia-smi reported [Unknown Error] values"),
        ("0, 0, No, Yes, Yes, 40", "critical", "row remapping failed"),
        ("0, [GPU requires reset], No, No, No, 40", "critical", "GPU requires reset"),
    ],
)
def test_gpu_health_follows_the_health_columns_the_query_included(row, health, reason):
    [gpu] = nvidia_smi.parse_query_gpu(HEALTH_HEADER + row + "\n")

    assert gpu.health == health
    if reason:
        assert reason in gpu.extra["health_reasons"]
    else:
        assert "health_reasons" not in gpu.extra


def test_no_devices_found_is_an_empty_list():
    assert nvidia_smi.parse_query_gpu("No devices were found\n") == []


def test_garbage_raises_a_parse_error_naming_nvidia_smi():
    with pytest.raises(ParseError) as caught:
        nvidia_smi.parse_query_gpu("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
                                   version="535.104.05")

    assert caught.value.tool == "nvidia-smi"
    assert str(caught.value).startswith("nvidia-smi 535.104.05: unrecognised CSV header")


def test_a_row_with_a_different_column_count_is_rejected_rather_than_guessed():
    with pytest.raises(ParseError, match="row 1 has 3 values for 2 columns"):
        nvidia_smi.parse_query_gpu("index, name\n0, NVIDIA, Inc. GPU\n")


@pytest.mark.parametrize("capture", [f"q_load_{H100}.txt", "q-x_a100-sxm4-40gb-mig_driver-510.47.03_netdata.xml",
                                     f"table_load_{H100}.txt", f"L_{H100}.txt"])
def test_other_nvidia_smi_formats_fed_to_the_csv_parser_raise_parse_error_not_a_crash(capture):
    with pytest.raises(ParseError):
        nvidia_smi.parse_query_gpu(fixture(capture))


# --- versions, -L, compute apps ------------------------------------------------------------------------


def test_version_output_gives_the_driver_cuda_and_nvidia_smi_versions():
    versions = nvidia_smi.parse_versions(bundle_section("--version"))

    assert versions == {"nvidia_smi_version": "590.48.01", "nvidia_driver_version": "590.48.01",
                        "cuda_version": "13.1"}


@pytest.mark.parametrize("capture", [f"table_idle_{H100}.txt", f"table_load_{H100}.txt"])
def test_the_plain_table_banner_gives_the_same_versions(capture):
    versions = nvidia_smi.parse_versions(fixture(capture))

    assert versions == {"nvidia_smi_version": "590.48.01", "nvidia_driver_version": "590.48.01",
                        "cuda_version": "13.1"}


def test_the_bundle_table_section_matches_the_table_capture():
    assert bundle_section("", occurrence=1).strip() == fixture(f"table_load_{H100}.txt").strip()


def test_a_banner_without_cuda_gives_none_for_cuda():
    banner = "| NVIDIA-SMI 470.57.02    Driver Version: 470.57.02    CUDA Version: N/A      |"

    assert nvidia_smi.parse_versions(banner)["cuda_version"] is None
    assert nvidia_smi.parse_versions(banner)["nvidia_driver_version"] == "470.57.02"


def test_list_gpus_output_gives_index_name_and_uuid():
    assert nvidia_smi.parse_list(fixture(f"L_{H100}.txt")) == [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-00000000-0000-0000-0000-000000000000", "mig": []}
    ]


def test_list_gpus_output_attaches_mig_devices_to_their_gpu():
    text = ("GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f)\n"
            "  MIG 1g.5gb      Device  0: (UUID: MIG-0f5d3a1b-0000-5a9b-9e55-1c8ba1f5e0a1)\n"
            "  MIG 3g.20gb     Device  1: (UUID: MIG-8b8a7c4d-0000-5e2f-8f1a-2b7c3d4e5f60)\n")
    [gpu] = nvidia_smi.parse_list(text)

    assert [m["profile"] for m in gpu["mig"]] == ["1g.5gb", "3g.20gb"]
    assert gpu["mig"][1]["index"] == 1


def test_the_compute_apps_capture_yields_three_processes_with_memory_in_bytes():
    apps = nvidia_smi.parse_compute_apps(fixture(f"query-compute-apps-csv_load_{H100}.csv"))

    assert [a["pid"] for a in apps] == [11327, 11328, 11345]
    assert apps[2]["process_name"] == "./gpu_burn"
    assert apps[2]["used_memory_bytes"] == 15690 * MIB
    assert apps[0]["gpu_bus_id"] == "00000000:00:09.0"

"""npu-smi parsers against recorded outputs (tests/fixtures/npu-smi, provenance in SOURCES.md)."""

from pathlib import Path

import pytest

from nodes.probes.parsers import npu_smi
from nodes.probes.parsers.common import ParseError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "npu-smi"
MIB = 1024 * 1024

INFO_910B3 = "info_910B3x8_npu-smi-23.0.7_vllm-ascend-198.txt"
INFO_310_20 = "info_atlas800-infer-3000_310x4_npu-smi-20.2.0_huawei-doc.txt"
INFO_310_21 = "info_atlas800-infer-3000_310x4_npu-smi-21.0.4_huawei-doc.txt"
INFO_910A = "info_atlas800-train-9010_910Ax8_npu-smi-22.0.3.1_huawei-doc.txt"
INFO_910_PROCESSES = "info_atlas800-train-9010_910x8_npu-smi-24.1.RC2_with-processes_huawei-doc.txt"
MAP_910B = "info-m_910b_8npu_huawei-doc-910B.txt"
MAP_910A = "info-m_atlas800-train-9010_910A_npu-smi-24.1.RC2_huawei-doc.txt"
MAP_310 = "info-m_atlas800-infer-3000_310_npu-smi-21.0.4_huawei-doc.txt"
MAP_DUO = "info-m_310p_duo_4card_huawei-doc-310P.txt"

# Atlas 300I Duo: each card (NPU ID) carries two 310P3 chips sharing one PCIe address, and npu-smi repeats
# the NPU line before each chip line. No capture of this table is in the shared fixtures, so this text is
# written here in the layout that 300I Duo owners publish (npu-smi 25.x; e.g. Syllo/nvtop#421), with
# made-up values, and with the NPU IDs of the Duo `info -m` capture so the two can be used together.
# Note the "37623/ 44278" spacing in one row: real outputs print it so when the used value is wide.
DUO_INFO = """\
+--------------------------------------------------------------------------------------------------------+
| npu-smi 25.2.0                                   Version: 25.2.0                                       |
+-------------------------------+-----------------+------------------------------------------------------+
| NPU     Name                  | Health          | Power(W)     Temp(C)           Hugepages-Usage(page) |
| Chip    Device                | Bus-Id          | AICore(%)    Memory-Usage(MB)                        |
+===============================+=================+======================================================+
| 1       310P3                 | OK              | NA           47                0     / 0             |
| 0       0                     | 0000:01:00.0    | 0            1530 / 44280                            |
+-------------------------------+-----------------+------------------------------------------------------+
| 1       310P3                 | OK              | NA           46                0     / 0             |
| 1       1                     | 0000:01:00.0    | 0            1411 / 43693                            |
+===============================+=================+======================================================+
| 2       310P3                 | OK              | NA           52                0     / 0             |
| 0       2                     | 0000:02:00.0    | 12           37623/ 44280                            |
+-------------------------------+-----------------+------------------------------------------------------+
| 2       310P3                 | Alarm           | NA           51                0     / 0             |
| 1       3                     | 0000:02:00.0    | 9            20011 / 43693                           |
+===============================+=================+======================================================+
| 4       310P3                 | OK              | NA           44                0     / 0             |
| 0       4                     | 0000:81:00.0    | 0            1530 / 44280                            |
+-------------------------------+-----------------+------------------------------------------------------+
| 4       310P3                 | OK              | NA           45                0     / 0             |
| 1       5                     | 0000:81:00.0    | 0            1411 / 43693                            |
+===============================+=================+======================================================+
| 5       310P3                 | OK              | NA           43                0     / 0             |
| 0       6                     | 0000:82:00.0    | 0            1530 / 44280                            |
+-------------------------------+-----------------+------------------------------------------------------+
| 5       310P3                 | OK              | NA           44                0     / 0             |
| 1       7                     | 0000:82:00.0    | 0            1411 / 43693                            |
+===============================+=================+======================================================+
+-------------------------------+-----------------+------------------------------------------------------+
| NPU     Chip                  | Process id      | Process name             | Process memory(MB)        |
+===============================+=================+======================================================+
| 2       0                     | 402117          | python3                  | 36093                     |
| 2       1                     | 402118          | python3                  | 18480                     |
+===============================+=================+======================================================+
"""

# Atlas A3 (910C): two chips per NPU, the second chip column is "Phy-ID", a missing power reads "-".
# Layout as in A3 outputs published in issues (npu-smi 25.2.x); values made up.
A3_INFO = """\
+------------------------------------------------------------------------------------------------+
| npu-smi 25.2.1                   Version: 25.2.1                                               |
+---------------------------+---------------+----------------------------------------------------+
| NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
| Chip  Phy-ID              | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
+===========================+===============+====================================================+
| 0     Ascend910           | OK            | 171.2       39                0    / 0             |
| 0     0                   | 0000:9D:00.0  | 3           0    / 0          3200 / 65536         |
+------------------------------------------------------------------------------------------------+
| 0     Ascend910           | OK            | -           38                0    / 0             |
| 1     1                   | 0000:9F:00.0  | 0           0    / 0          2900 / 65536         |
+===========================+===============+====================================================+
"""


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def parse(info: str, chip_map: str | None = None):
    logic_ids = npu_smi.parse_chip_map(fixture(chip_map)) if chip_map else None
    return npu_smi.parse_info(fixture(info), logic_ids)


# --- npu-smi info: one reading per chip, for every captured layout -------------------------------------


def test_eight_910b3_npus_use_hbm_and_take_their_index_from_info_m():
    npus = parse(INFO_910B3, MAP_910B)

    assert len(npus) == 8
    assert [n.index for n in npus] == list(range(8))
    assert {n.model for n in npus} == {"910B3"}
    assert {(n.vendor, n.kind, n.health) for n in npus} == {("huawei", "npu", "ok")}
    first = npus[0]
    assert first.bus_id == "0000:C1:00.0"
    assert first.uuid == "npu-0000:C1:00.0-chip0"
    assert first.memory_total_bytes == 65536 * MIB
    assert first.memory_used_bytes == 3338 * MIB
    assert (first.power_w, first.temperature_c, first.utilization_percent) == (102.8, 55.0, 0.0)
    assert first.extra["memory_kind"] == "hbm"
    assert first.extra["index_source"] == "npu-smi info -m"
    assert (first.extra["npu_id"], first.extra["chip_id"]) == (0, 0)
    assert (first.extra["hugepages_used"], first.extra["hugepages_total"]) == (0, 0)
    assert len({n.uuid for n in npus}) == 8


def test_the_table_banner_gives_the_npu_smi_version():
    assert npu_smi.parse_version(fixture(INFO_910B3)) == "23.0.7"
    assert npu_smi.parse_version(fixture(INFO_310_21)) == "21.0.4.B030"
    assert npu_smi.parse_version(fixture(INFO_910_PROCESSES)) == "24.1.RC2"


def test_a_310_card_with_four_chips_under_npu_20_2_0_yields_four_ddr_accelerators_in_table_order():
    npus = parse(INFO_310_20)

    assert [(n.extra["npu_id"], n.extra["chip_id"], n.index) for n in npus] == [
        (215, 0, 0), (215, 1, 1), (215, 2, 2), (215, 3, 3)]
    assert {n.model for n in npus} == {"310"}
    assert npus[0].memory_total_bytes == 8192 * MIB
    assert npus[0].memory_used_bytes == 2703 * MIB
    assert npus[0].extra["memory_kind"] == "ddr"
    assert npus[0].extra["index_source"] == "table order"
    assert "hugepages_total" not in npus[0].extra  # 20.2.0 has no hugepages column
    assert [n.temperature_c for n in npus] == [56.0, 57.0, 57.0, 55.0]
    assert [n.bus_id for n in npus] == ["0000:DA:00.0", "0000:DC:00.0", "0000:DD:00.0", "0000:DB:00.0"]


def test_npu_smi_21_0_4_takes_logical_ids_from_info_m_not_from_the_device_column():
    npus = parse(INFO_310_21, MAP_310)

    assert [n.index for n in npus] == [0, 1, 2, 3]
    assert [n.extra["device"] for n in npus] == [3, 4, 5, 6]  # kept, but not a valid logical id here
    assert npus[1].memory_used_bytes == 2867 * MIB
    assert (npus[0].extra["hugepages_used"], npus[0].extra["hugepages_total"]) == (0, 970)
    assert [n.temperature_c for n in npus] == [73.0, 74.0, 70.0, 65.0]


def test_910a_reports_hbm_when_its_hbm_total_is_nonzero_and_keeps_ddr_in_extra():
    npus = parse(INFO_910A, MAP_910A)

    assert len(npus) == 8
    assert {n.model for n in npus} == {"910A"}
    assert npus[0].memory_total_bytes == 32768 * MIB
    assert npus[0].memory_used_bytes == 0
    assert npus[0].extra["ddr_total_bytes"] == 15077 * MIB
    assert npus[0].extra["ddr_used_bytes"] == 1867 * MIB
    assert npus[3].power_w == 191.7
    assert [n.bus_id for n in npus][:2] == ["0000:61:00.0", "0000:DB:00.0"]


def test_910_with_warning_health_and_a_process_table():
    npus = parse(INFO_910_PROCESSES)

    assert [n.health for n in npus] == ["ok", "ok", "ok", "warning", "ok", "ok", "ok", "warning"]
    assert npus[3].extra["health_raw"] == "Warning"
    assert npus[3].power_w == 206.9
    assert npus[0].model == "xxx"  # redacted by Huawei in the published example
    assert [p["pid"] for p in npus[0].extra["processes"]] == [37656, 37664, 37640, 37648]
    assert npus[0].extra["processes"][0] == {"pid": 37656, "name": "hlt_host_devmm_", "memory_bytes": 686 * MIB}
    assert npus[3].memory_total_bytes == 32768 * MIB
    assert npus[3].extra["ddr_total_bytes"] == 15039 * MIB


def test_a_300i_duo_card_yields_one_accelerator_per_chip():
    logic_ids = npu_smi.parse_chip_map(fixture(MAP_DUO))
    npus = npu_smi.parse_info(DUO_INFO, logic_ids)

    assert len(npus) == 8
    assert [(n.extra["npu_id"], n.extra["chip_id"], n.index) for n in npus] == [
        (1, 0, 0), (1, 1, 1), (2, 0, 2), (2, 1, 3), (4, 0, 4), (4, 1, 5), (5, 0, 6), (5, 1, 7)]
    card = npus[:2]
    assert card[0].bus_id == card[1].bus_id == "0000:01:00.0"
    assert card[0].uuid != card[1].uuid
    assert [n.memory_total_bytes for n in card] == [44280 * MIB, 43693 * MIB]
    assert npus[2].memory_used_bytes == 37623 * MIB  # "37623/ 44280"
    assert npus[2].utilization_percent == 12.0
    assert npus[0].power_w is None  # "NA": the card reports power once, not per chip
    assert npus[3].health == "critical"  # Alarm
    assert npus[2].extra["processes"] == [{"pid": 402117, "name": "python3", "memory_bytes": 36093 * MIB}]
    assert npus[0].extra["index_source"] == "npu-smi info -m"


def test_several_chip_lines_under_one_npu_line_are_read_as_several_chips():
    lines = DUO_INFO.splitlines()
    # Drop the repeated NPU line (and its border) of the second chip of card 1.
    text = "\n".join(lines[:8] + lines[10:])
    npus = npu_smi.parse_info(text)

    assert [(n.extra["npu_id"], n.extra["chip_id"]) for n in npus][:3] == [(1, 0), (1, 1), (2, 0)]
    assert npus[1].temperature_c == 47.0  # the card's values, from its single NPU line


def test_an_a3_npu_with_a_phy_id_column_and_a_dash_for_power():
    npus = npu_smi.parse_info(A3_INFO)

    assert [(n.extra["npu_id"], n.extra["chip_id"], n.extra["phy_id"]) for n in npus] == [(0, 0, 0), (0, 1, 1)]
    assert npus[0].power_w == 171.2
    assert npus[1].power_w is None
    assert npus[1].memory_used_bytes == 2900 * MIB


def test_without_a_complete_info_m_map_the_index_falls_back_to_table_order():
    npus = npu_smi.parse_info(fixture(INFO_910B3), {(0, 0): 5})  # covers one chip of eight

    assert [n.index for n in npus] == list(range(8))
    assert {n.extra["index_source"] for n in npus} == {"table order"}


@pytest.mark.parametrize(("raw", "health"), [("OK", "ok"), ("Warning", "warning"), ("Alarm", "critical"),
                                             ("Critical", "critical"), ("NOT_EXIST", "unknown")])
def test_huawei_health_words_map_to_console_health(raw, health):
    text = fixture(INFO_910B3).replace("| OK            | 102.8", f"| {raw:<14}| 102.8", 1)

    assert npu_smi.parse_info(text)[0].health == health


def test_publisher_url_lines_after_the_table_are_ignored():
    assert fixture(INFO_310_21).rstrip().splitlines()[-1].startswith("https://")
    assert len(parse(INFO_310_21)) == 4


# --- npu-smi info -m -----------------------------------------------------------------------------------


def test_info_m_leaves_out_mcu_rows_and_url_lines():
    assert npu_smi.parse_chip_map(fixture(MAP_310)) == {(6, 0): 0, (6, 1): 1, (6, 2): 2, (6, 3): 3}


def test_info_m_of_a_300i_duo_maps_two_chips_per_card():
    mapping = npu_smi.parse_chip_map(fixture(MAP_DUO))

    assert len(mapping) == 8
    assert mapping[(2, 1)] == 3
    assert mapping[(5, 0)] == 6


def test_info_m_of_910b_and_910a_maps_one_chip_per_npu():
    expected = {(npu, 0): npu for npu in range(8)}

    assert npu_smi.parse_chip_map(fixture(MAP_910B)) == expected
    assert npu_smi.parse_chip_map(fixture(MAP_910A)) == expected


def test_info_m_without_its_header_raises_and_empty_output_is_an_empty_map():
    with pytest.raises(ParseError, match="unrecognised 'info -m' layout"):
        npu_smi.parse_chip_map("Error: the command is not supported.\n")
    assert npu_smi.parse_chip_map("") == {}


# --- npu-smi info -t ... (detail queries) ---------------------------------------------------------------


def test_the_common_detail_of_a_910b_npu_has_a_chip_block_and_an_mcu_block():
    blocks = npu_smi.parse_detail(fixture("info-t-common-i0_910b_huawei-doc.txt"))

    assert blocks[0] == {"NPU ID": "0", "Chip Count": "1"}
    assert blocks[1]["Aicore Count"] == "32"
    assert blocks[1]["NPU Real-time Power(W)"] == "69.0"
    assert blocks[2]["Chip Name"] == "mcu"


def test_the_common_detail_of_a_300i_duo_card_has_one_block_per_chip():
    blocks = npu_smi.parse_detail(fixture("info-t-common-i1_310p-duo_huawei-doc.txt"))

    assert blocks[0]["Chip Count"] == "2"
    assert [b["Chip ID"] for b in blocks[1:3]] == ["0", "1"]
    assert [b["Temperature(C)"] for b in blocks[1:3]] == ["60", "59"]


def test_the_usages_detail_of_a_300i_duo_card_reports_ddr_per_chip():
    blocks = npu_smi.parse_detail(fixture("info-t-usages-i1_310p-duo_huawei-doc.txt"))

    assert [(b["Chip ID"], b["DDR Capacity(MB)"]) for b in blocks[1:]] == [("0", "44280"), ("1", "43693")]


def test_the_usages_detail_of_a_910b_npu_reports_hbm():
    blocks = npu_smi.parse_detail(fixture("info-t-usages-i0_910b_huawei-doc.txt"))

    assert blocks[1]["HBM Capacity(MB)"] == "32768"
    assert blocks[1]["Chip ID"] == "0"


@pytest.mark.parametrize(("capture", "bus", "firmware"), [
    ("info-t-board-i0-c0_910b_huawei-doc.txt", "0000:81:00.0", "7.1.0.4.218"),
    ("info-t-board-i1-c0_310p_huawei-doc.txt", "0000:81:00.0", "7.1.0.4"),
])
def test_the_board_detail_gives_bus_and_firmware(capture, bus, firmware):
    [block] = npu_smi.parse_detail(fixture(capture))

    assert block["PCIe Bus Info"] == bus
    assert block["Firmware Version"] == firmware


# --- garbage --------------------------------------------------------------------------------------------


def test_garbage_raises_a_parse_error_naming_npu_smi():
    with pytest.raises(ParseError) as caught:
        npu_smi.parse_info("dcmi model initialized failed, because the device is used. ret is -8020\n")

    assert caught.value.tool == "npu-smi"
    assert "unrecognised output layout" in caught.value.message
    assert "dcmi model initialized failed" in caught.value.message


def test_a_broken_table_under_a_known_banner_names_the_version():
    text = "\n".join(fixture(INFO_910B3).splitlines()[:2]) + "\n| this is | not | a table |\n"

    with pytest.raises(ParseError) as caught:
        npu_smi.parse_info(text)

    assert str(caught.value).startswith("npu-smi 23.0.7: ")


def test_a_row_with_more_values_than_its_header_names_is_rejected():
    text = fixture(INFO_910B3).replace("102.8       55", "102.8  1  55", 1)

    with pytest.raises(ParseError, match="more values than columns"):
        npu_smi.parse_info(text)


def test_a_header_with_no_devices_is_an_empty_list():
    assert npu_smi.parse_info("\n".join(fixture(INFO_910B3).splitlines()[:6])) == []

"""Host-fact parsers: os-release, uname, CPU, memory, df, load, Ascend version files."""

import pytest

from nodes.probes.parsers import facts

# /etc/os-release as openEuler ships it (note ID="openEuler", not lower-case as the spec asks).
OPENEULER_2203 = """\
NAME="openEuler"
VERSION="22.03 (LTS-SP4)"
ID="openEuler"
VERSION_ID="22.03"
PRETTY_NAME="openEuler 22.03 (LTS-SP4)"
ANSI_COLOR="0;31"

"""
OPENEULER_2403 = """\
NAME="openEuler"
VERSION="24.03 (LTS-SP1)"
ID="openEuler"
VERSION_ID="24.03"
PRETTY_NAME="openEuler 24.03 (LTS-SP1)"
ANSI_COLOR="0;31"
"""
UBUNTU_2204 = """\
PRETTY_NAME="Ubuntu 22.04.5 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.5 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
"""
KYLIN_V10 = """\
NAME="Kylin Linux Advanced Server"
VERSION="V10 (Lance)"
ID="kylin"
VERSION_ID="V10"
"""


@pytest.mark.parametrize(("text", "expected"), [
    (OPENEULER_2203, {"os": "openEuler 22.03 (LTS-SP4)", "os_id": "openeuler", "os_version": "22.03"}),
    (OPENEULER_2403, {"os": "openEuler 24.03 (LTS-SP1)", "os_id": "openeuler", "os_version": "24.03"}),
    (UBUNTU_2204, {"os": "Ubuntu 22.04.5 LTS", "os_id": "ubuntu", "os_version": "22.04"}),
    (KYLIN_V10, {"os": "Kylin Linux Advanced Server V10 (Lance)", "os_id": "kylin", "os_version": "V10"}),
    ("", {"os": None, "os_id": None, "os_version": None}),
])
def test_os_release_gives_pretty_name_id_and_version(text, expected):
    assert facts.parse_os_release(text) == expected


def test_uname_section_gives_hostname_kernel_and_arch():
    text = "nodename=npu-node-07\nrelease=5.10.0-182.0.0.95.oe2203sp3.aarch64\nmachine=aarch64\n"

    assert facts.parse_uname(text) == {"hostname": "npu-node-07",
                                       "kernel": "5.10.0-182.0.0.95.oe2203sp3.aarch64", "arch": "aarch64"}


def test_x86_cpu_model_comes_from_cpuinfo():
    cpuinfo = "vendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"

    assert facts.parse_cpu_model(cpuinfo, "Model name: Something else\n") == "Intel(R) Xeon(R) Platinum 8480+"


def test_kunpeng_has_no_model_name_in_cpuinfo_so_lscpu_names_it():
    cpuinfo = "CPU implementer\t: 0x48\nCPU part\t: 0xd01\n"
    lscpu = ("Architecture:                       aarch64\nVendor ID:                          HiSilicon\n"
             "BIOS Model name:                    HUAWEI Kunpeng 920 7260\n"
             "Model name:                         Kunpeng-920\n")

    assert facts.parse_cpu_model(cpuinfo, lscpu) == "Kunpeng-920"


def test_without_a_usable_lscpu_model_the_arm_part_number_names_the_cpu():
    cpuinfo = "CPU implementer\t: 0x48\nCPU part\t: 0xd01\n"

    assert facts.parse_cpu_model(cpuinfo, "Model name: -\nModel: 0\n") == "HiSilicon Kunpeng-920"
    assert facts.parse_cpu_model(cpuinfo, "") == "HiSilicon Kunpeng-920"


def test_an_unknown_arm_part_falls_back_to_hardware_or_none():
    assert facts.parse_cpu_model("CPU implementer\t: 0x99\nHardware\t: BCM2835\n") == "BCM2835"
    assert facts.parse_cpu_model("", "") is None


def test_meminfo_kib_become_bytes():
    text = "MemTotal:       1056372432 kB\nMemAvailable:   998877660 kB\n"

    assert facts.parse_meminfo(text) == {"memory_total_bytes": 1056372432 * 1024,
                                         "memory_available_bytes": 998877660 * 1024}


def test_meminfo_without_memavailable_gives_none_for_it():
    assert facts.parse_meminfo("MemTotal: 1024 kB\n")["memory_available_bytes"] is None


def test_df_with_one_byte_blocks():
    text = ("Filesystem          1-blocks         Used    Available Capacity Mounted on\n"
            "/dev/nvme0n1p2 1966736678912 512110059520 1354597081088      28% /\n"
            "/dev/md0      15002910621696 9001746210816 6001164410880      60% /data/model weights\n")

    assert facts.parse_df(text) == [
        {"mount": "/", "filesystem": "/dev/nvme0n1p2", "total_bytes": 1966736678912, "used_bytes": 512110059520},
        {"mount": "/data/model weights", "filesystem": "/dev/md0", "total_bytes": 15002910621696,
         "used_bytes": 9001746210816},
    ]


def test_df_in_kib_blocks_without_x_support_drops_pseudo_filesystems():
    text = ("Filesystem           1024-blocks    Used Available Capacity Mounted on\n"
            "overlay                 61255492 9875312  48238792      17% /\n"
            "tmpfs                      65536       0     65536       0% /dev\n"
            "/dev/sda1               61255492 9875312  48238792      17% /etc/hosts\n")

    assert facts.parse_df(text) == [{"mount": "/etc/hosts", "filesystem": "/dev/sda1",
                                     "total_bytes": 61255492 * 1024, "used_bytes": 9875312 * 1024}]


def test_loadavg_gives_three_floats_and_garbage_gives_none():
    assert facts.parse_loadavg("12.50 10.02 8.75 3/2101 998877\n") == [12.5, 10.02, 8.75]
    assert facts.parse_loadavg("") is None
    assert facts.parse_loadavg("a b c") is None


def test_ascend_driver_and_firmware_version_files():
    driver = ("Version=24.1.rc1\nascendhal_version=7.35.19\naicpu_version=1.0\n"
              "Innerversion=V100R001C15SPC006B220\ncompatible_version_fw=[7.0.0,7.2.99]\n")
    firmware = ("Version=7.1.0.11.220\nfirmware_version=1.0\npackage_version=23.0.7\n"
                "compatible_version_drv=[23.0.rc3,23.0.rc3.],[23.0.0,23.0.0.]\n")

    assert facts.parse_ascend_version_info(driver) == "24.1.rc1"
    assert facts.parse_ascend_version_info(firmware) == "7.1.0.11.220"
    assert facts.parse_ascend_version_info("package_version=23.0.7\n") == "23.0.7"
    assert facts.parse_ascend_version_info("") is None


def test_cann_version_from_the_toolkit_install_info():
    info = ("package_name=Ascend-cann-toolkit\nversion=8.1.RC1.alpha001\ninnerversion=V100R001C21B071\n"
            "arch=aarch64\nos=linux\npath=/usr/local/Ascend/ascend-toolkit/8.1.RC1.alpha001/aarch64-linux\n")

    assert facts.parse_cann_version(info) == "8.1.RC1.alpha001"


def test_cann_version_from_version_cfg_is_the_release_after_the_colon():
    cfg = ("# version: 1.0\nruntime_running_version=[7.5.0.1.129:8.0.RC3]\n"
           "toolkit_running_version=[7.5.0.1.129:8.0.RC3]\n")

    assert facts.parse_cann_version("", cfg) == "8.0.RC3"
    assert facts.parse_cann_version("", "runtime_running_version=[1.84.15.1.310:6.0.1]\n") == "6.0.1"
    assert facts.parse_cann_version("", "") is None


def test_parse_facts_fills_every_key_and_tolerates_missing_sections():
    sections = {
        "os-release": OPENEULER_2203,
        "uname": "nodename=n1\nrelease=5.10.0\nmachine=aarch64\n",
        "cpuinfo": "CPU implementer\t: 0x48\nCPU part\t: 0xd01\n",
        "nproc": "192\n",
        "meminfo": "MemTotal: 2048 kB\nMemAvailable: 1024 kB\n",
        "loadavg": "0.10 0.20 0.30 1/100 42\n",
        "ascend-driver-version-info": "Version=23.0.7\n",
    }
    result = facts.parse_facts(sections)

    assert set(result) == set(facts.FACT_KEYS)
    assert result["os_id"] == "openeuler"
    assert result["cpu_model"] == "HiSilicon Kunpeng-920"
    assert result["cpu_cores"] == 192
    assert result["memory_total_bytes"] == 2048 * 1024
    assert result["load"] == [0.1, 0.2, 0.3]
    assert result["ascend_driver_version"] == "23.0.7"
    assert result["disks"] == []
    assert result["cann_version"] is None
    assert result["nvidia_driver_version"] is None


def test_parse_facts_of_nothing_is_all_none():
    result = facts.parse_facts({})

    assert result == {**dict.fromkeys(facts.FACT_KEYS), "disks": []}

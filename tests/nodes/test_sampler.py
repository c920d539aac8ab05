"""The telemetry sampling session: its line parser, and the real script under bash with the fake
nvidia-smi / npu-smi (which print real captures) on its PATH."""

import os
import subprocess
import time

from nodes.probes.parsers.sampler import SamplerParser, accelerator_key
from nodes.probes.sampler import GPU_FULL_FIELDS, sampler_argv
from nodes.telemetry import LocalNodeStats, _PipeLines
from tests.conftest import FAKE_BIN, FIXTURES

FIELDS = ",".join(GPU_FULL_FIELDS)
GPU_LINE = ("G 3, GPU-00000000-0000-0000-0000-000000000003, 00000000:03:09.0, 19818, 81559, 87, 59, 631.95, 0, "
            "[N/A], No, No")


def feed(parser, lines, t):
    out = []
    for line in lines:
        out += parser.feed(line, t)
    return out


def test_cpu_and_network_become_rates_from_the_second_tick_on():
    parser = SamplerParser()
    first = feed(parser, ["@@boom:sampler 1 1000@@", "C 100 0 100 800 0 0 0 0", "M 1000 250", "L 0.50",
                          "N 1000 2000", "D 250 1000", "E"], 10.0)
    assert first[0][0] == "node"
    reading = first[0][1]
    assert reading.cpu_percent is None and reading.network_rx_bytes_per_s is None
    assert reading.memory_used_bytes == 750 * 1024 and reading.memory_percent == 75.0
    assert reading.load1 == 0.5 and reading.disk_used_percent == 25.0
    second = feed(parser, ["C 160 0 120 820 0 0 0 0", "M 1000 500", "L 0.75", "N 3000 2500", "E"], 12.0)[0][1]
    assert second.cpu_percent == 80.0  # 80 busy jiffies of 100
    assert second.network_rx_bytes_per_s == 1000.0 and second.network_tx_bytes_per_s == 250.0
    assert second.disk_used_percent == 25.0  # df runs every 10th tick; the last value stands
    assert parser.format_version == "1"


def test_gpu_lines_are_read_by_the_field_list_the_session_announced():
    parser = SamplerParser()
    assert feed(parser, [GPU_LINE], 1.0) == [] and parser.error_count == 1  # fields unknown yet
    readings = feed(parser, [f"@@boom:gpu-fields {FIELDS}@@", GPU_LINE], 1.0)
    (kind, gpu), = readings
    assert kind == "accelerator" and gpu.index == 3 and gpu.utilization_percent == 87.0
    assert gpu.memory_used_bytes == 19818 * 1024 * 1024 and gpu.power_w == 631.95 and gpu.health == "ok"
    assert accelerator_key(gpu) == "GPU-00000000-0000-0000-0000-000000000003"


def test_an_npu_smi_block_gives_one_reading_per_chip():
    text = (FIXTURES / "npu-smi" / "info_910B3x8_npu-smi-23.0.7_vllm-ascend-198.txt").read_text()
    parser = SamplerParser()
    readings = feed(parser, ["@@boom:npu@@", *text.splitlines(), "@@boom:npu-end@@", "E"], 1.0)
    assert len(readings) == 8 and all(kind == "accelerator" for kind, _ in readings)
    assert readings[0][1].vendor == "huawei" and accelerator_key(readings[0][1]) == readings[0][1].uuid


def test_garbage_is_counted_and_skipped_never_raised():
    parser = SamplerParser()
    lines = [f"@@boom:gpu-fields {FIELDS}@@", "G 1, 2", "C x y z", "E", "what is this", "\x00\xff", "M", "E"]
    feed(parser, lines, 1.0)
    assert parser.error_count >= 3 and len(parser.errors) <= 5


def test_the_script_streams_node_counters_and_every_accelerator_then_ends_with_its_stdin():
    env = dict(os.environ, PATH=f"{FAKE_BIN}:{os.environ['PATH']}")
    process = subprocess.Popen(sampler_argv(0.5, "node"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    lines = _PipeLines(process.stdout)
    parser = SamplerParser()
    nodes, accelerators = [], set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (len(nodes) < 3 or len(accelerators) < 16):
        line = lines.readline(1.0)
        if line is None:
            continue
        for kind, reading in parser.feed(line, time.time()):
            if kind == "node":
                nodes.append(reading)
            else:
                accelerators.add(accelerator_key(reading))
    assert len(nodes) >= 3 and nodes[-1].cpu_percent is not None and nodes[-1].memory_percent
    assert len(accelerators) == 16  # 8 fake GPUs, 8 fake Ascend chips
    assert parser.error_count == 0, parser.errors
    process.stdin.close()
    assert process.wait(timeout=5) == 0


def test_local_node_stats_give_rates_after_the_first_sample():
    stats = LocalNodeStats()
    first = stats.sample()
    assert first.cpu_percent is None and first.memory_percent > 0 and first.disk_used_percent is not None
    time.sleep(0.2)
    second = stats.sample()
    assert 0 <= second.cpu_percent <= 100 and second.network_rx_bytes_per_s is not None

"""The node-side sha256 program, run for real with subprocess on files the tests write."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from models_registry.inspection.hashing import HashEvent, HashTracker, parse_hash_line
from models_registry.inspection.remote import (
    _BOOTSTRAP,
    _HASH_B64,
    HASH_SHELL_FALLBACK,
    hash_command,
    remote_command_line,
)
from tests.models_registry import old_pythons, write_tiny_gguf, write_zero_safetensors

HAS_SHA256SUM = shutil.which("sha256sum") is not None


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_hash(directory, files, method="auto", *, through_shell=False, env=None):
    argv = hash_command(str(directory), files, method)
    if through_shell:
        argv = ["sh", "-c", remote_command_line(argv)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    events = [parse_hash_line(line) for line in result.stdout.splitlines()]
    assert None not in events, result.stdout
    return result, events


def results(events) -> dict[str, str]:
    return {e.path: e.sha256 for e in events if e.kind == "sha256"}


@pytest.fixture
def model_dir(tmp_path):
    directory = tmp_path / "model dir"
    directory.mkdir()
    write_zero_safetensors(directory / "model.safetensors", {"w": ("BF16", [512, 512])})
    write_tiny_gguf(directory / "tiny.gguf")
    (directory / "sub").mkdir()
    (directory / "sub" / "config.json").write_text('{"a": 1}')
    return directory


FILES = ["model.safetensors", "tiny.gguf", "sub/config.json"]


@pytest.mark.parametrize(
    "method", ["python", pytest.param("sha256sum", marks=pytest.mark.skipif(not HAS_SHA256SUM, reason="no sha256sum")),
               "auto"])
def test_each_file_gets_the_sha256_that_hashlib_computes(model_dir, method):
    result, events = run_hash(model_dir, FILES, method)
    assert result.returncode == 0
    assert results(events) == {name: sha256_of(model_dir / name) for name in FILES}
    kinds = [e.kind for e in events]
    assert kinds[0] == "plan" and kinds[1] == "method" and kinds[-1] == "done"
    total = sum((model_dir / name).stat().st_size for name in FILES)
    assert events[0] == HashEvent("plan", total=total, files=3)
    assert events[1].detail in ("python", "sha256sum")
    assert events[-1] == HashEvent("done", files=3, failed=0)


def test_progress_starts_at_zero_and_ends_at_the_file_size(model_dir):
    _, events = run_hash(model_dir, ["model.safetensors"], "python")
    progress = [e for e in events if e.kind == "progress"]
    size = (model_dir / "model.safetensors").stat().st_size
    assert progress[0] == HashEvent("progress", path="model.safetensors", bytes_done=0, total=size)
    assert progress[-1].bytes_done == size == progress[-1].total
    assert [e.bytes_done for e in progress] == sorted(e.bytes_done for e in progress)


@pytest.mark.skipif(not HAS_SHA256SUM or not os.path.isdir("/proc/self/fdinfo"), reason="needs sha256sum, /proc")
def test_sha256sum_progress_is_read_from_its_file_position_in_proc(tmp_path):
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(768 << 20)
    _, events = run_hash(tmp_path, ["big.bin"], "sha256sum")
    middle = [e.bytes_done for e in events if e.kind == "progress" and 0 < e.bytes_done < 768 << 20]
    assert middle and middle == sorted(middle)


def test_missing_files_are_named_and_the_others_still_hashed(model_dir):
    result, events = run_hash(model_dir, ["gone.safetensors", "tiny.gguf"])
    assert result.returncode == 1
    assert HashEvent("missing", path="gone.safetensors", detail="file is missing") in events
    assert set(results(events)) == {"tiny.gguf"}
    assert events[-1] == HashEvent("done", files=1, failed=1)


def test_a_directory_that_does_not_exist_is_fatal(tmp_path):
    result, events = run_hash(tmp_path / "nope", ["a"])
    assert result.returncode == 2
    assert events[0].kind == "fatal" and "is not a directory" in events[0].detail


def test_a_directory_is_not_a_file_to_hash(model_dir):
    _, events = run_hash(model_dir, ["sub"])
    assert HashEvent("error", path="sub", detail="not a regular file") in events


def _hash_while_changing(directory, change, method):
    big = directory / "big.bin"
    with open(big, "wb") as f:
        f.truncate(512 << 20)  # sparse: hashing it takes long enough (~0.5 s) to change it meanwhile
    argv = hash_command(str(directory), ["big.bin", "model.safetensors"], method)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("@@progress big.bin 0 "):
                change(big)
        proc.wait()
    return proc.returncode, [parse_hash_line(line) for line in lines]


def _append(path):
    with open(path, "ab") as f:
        f.write(b"more")


def _touch(path):
    st = path.stat()
    os.utime(path, (st.st_atime, st.st_mtime + 60))


@pytest.mark.parametrize("change", [_append, _touch], ids=["appended", "touched"])
@pytest.mark.parametrize(
    "method", ["python", pytest.param("sha256sum", marks=pytest.mark.skipif(not HAS_SHA256SUM, reason="no sha256sum"))])
def test_a_file_that_changes_while_it_is_hashed_is_reported_not_hashed(model_dir, change, method):
    returncode, events = _hash_while_changing(model_dir, change, method)
    assert returncode == 1
    changed = [e for e in events if e.kind == "changed"]
    assert len(changed) == 1 and changed[0].path == "big.bin"
    assert "changed while it was hashed" in changed[0].detail
    assert set(results(events)) == {"model.safetensors"}


def test_paths_with_spaces_quotes_and_command_substitution_stay_names(tmp_path):
    sentinel = tmp_path / "pwned"
    directory = tmp_path / "dir $(touch $SENTINEL) 'q' \"dq\""
    directory.mkdir()
    name = "w $(touch $SENTINEL); `touch $SENTINEL`.safetensors"
    write_zero_safetensors(directory / name, {"w": ("F32", [4])})
    env = os.environ | {"SENTINEL": str(sentinel)}
    for through_shell in (False, True):
        _, events = run_hash(directory, [name], through_shell=through_shell, env=env)
        assert results(events) == {name: sha256_of(directory / name)}
    assert not sentinel.exists()


def test_names_with_newlines_tabs_and_backslashes_are_escaped_and_read_back(tmp_path):
    name = "odd\nname\twith\\slash"
    (tmp_path / name).write_bytes(b"abc")
    _, events = run_hash(tmp_path, [name], "python")
    assert results(events) == {name: hashlib.sha256(b"abc").hexdigest()}


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "a/../../b", ""])
def test_file_names_that_leave_the_directory_are_refused_before_anything_runs(bad):
    with pytest.raises(ValueError):
        hash_command("/models", [bad])


def test_the_node_refuses_them_too_if_someone_builds_argv_by_hand(model_dir):
    argv = hash_command(str(model_dir), ["tiny.gguf"], "python")
    argv.append("../model dir/tiny.gguf")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    events = [parse_hash_line(line) for line in result.stdout.splitlines()]
    assert HashEvent("error", path="../model dir/tiny.gguf", detail="refused: path leaves the directory") in events


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method"):
        hash_command("/models", ["a"], "md5")


def test_auto_measures_which_hasher_is_faster_for_large_verifications(tmp_path):
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(300 << 20)
    _, events = run_hash(tmp_path, ["big.bin"], "auto")
    assert events[1].kind == "method" and events[1].detail in ("python", "sha256sum")
    assert results(events) == {"big.bin": hashlib.sha256(b"\0" * (300 << 20)).hexdigest()}


@pytest.mark.skipif(not HAS_SHA256SUM or not shutil.which("stat"), reason="needs sha256sum and stat")
def test_without_python_a_shell_loop_over_sha256sum_does_the_work(model_dir, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "sha256sum", "stat", "cat", "printf", "["):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    _, events = run_hash(model_dir, [*FILES, "gone"], env={"PATH": str(bin_dir)})
    assert events[1] == HashEvent("method", detail="sha256sum")
    assert results(events) == {name: sha256_of(model_dir / name) for name in FILES}
    assert HashEvent("missing", path="gone", detail="file is missing") in events
    assert events[-1] == HashEvent("done", files=3, failed=1)


def test_the_shell_fallback_reports_a_file_that_changes(model_dir):
    big = model_dir / "big.bin"
    with open(big, "wb") as f:
        f.truncate(256 << 20)
    argv = ["sh", "-c", HASH_SHELL_FALLBACK, "boom-hash-sh", "auto", str(model_dir), "big.bin"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("@@progress big.bin 0 "):
                _append(big)
    events = [parse_hash_line(line) for line in lines]
    assert [e.path for e in events if e.kind == "changed"] == ["big.bin"]


@pytest.mark.parametrize("python", old_pythons() or [pytest.param(None, marks=pytest.mark.skip("no old Python"))])
@pytest.mark.parametrize("method", ["python", "sha256sum"])
def test_the_hash_program_runs_on_old_pythons(model_dir, python, method):
    (model_dir / "ünïcode name.bin").write_bytes(b"x" * 1000)
    names = [*FILES, "ünïcode name.bin", "gone"]
    result = subprocess.run([python, "-c", _BOOTSTRAP, _HASH_B64, method, str(model_dir), *names],
                            capture_output=True, text=True, timeout=120)
    events = [parse_hash_line(line) for line in result.stdout.splitlines()]
    assert results(events) == {name: sha256_of(model_dir / name) for name in names[:-1]}, result.stderr
    assert events[-1] == HashEvent("done", files=4, failed=1)


@pytest.mark.parametrize(
    ("line", "event"),
    [
        ("@@progress a b c 10 20", HashEvent("progress", path="a b c", bytes_done=10, total=20)),
        ("@@sha256 " + "0" * 64 + " dir/a b", HashEvent("sha256", path="dir/a b", sha256="0" * 64)),
        ("@@changed x\\ty\tsize 1 -> 2", HashEvent("changed", path="x\ty", detail="size 1 -> 2")),
        ("@@error a\\\\b\tPermission denied", HashEvent("error", path="a\\b", detail="Permission denied")),
        ("@@plan 100 2", HashEvent("plan", total=100, files=2)),
        ("@@done 1 0\r\n", HashEvent("done", files=1, failed=0)),
        ("Welcome to node-7!", None),
        ("@@sha256 nothex path", None),
        ("@@progress a lot", None),
        ("@@bogus 1", None),
    ],
)
def test_hash_lines_parse_into_events_and_noise_is_ignored(line, event):
    assert parse_hash_line(line) == event


def test_a_tracker_turns_the_stream_into_progress_digests_and_named_failures(model_dir):
    tracker = HashTracker(["model.safetensors", "gone", "tiny.gguf"])
    argv = hash_command(str(model_dir), ["model.safetensors", "gone", "tiny.gguf"], "python")
    seen = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            tracker.feed(line)
            seen.append(tracker.progress)
    assert seen == sorted(seen) and seen[-1] == 1.0 and tracker.finished
    assert tracker.method == "python"
    assert tracker.sha256 == {name: sha256_of(model_dir / name) for name in ("model.safetensors", "tiny.gguf")}
    assert tracker.failures() == {"gone": "file is missing"}


def test_a_tracker_blames_an_interrupted_run_for_the_files_it_never_reached():
    tracker = HashTracker(["a", "b"])
    for line in ["@@plan 200 2", "@@method python", "@@progress a 0 100", "@@progress a 50 100"]:
        tracker.feed(line)
    assert tracker.progress == 0.25 and not tracker.finished
    tracker.feed("@@sha256 " + "a" * 64 + " a")
    assert tracker.progress == 0.5
    assert tracker.failures() == {"b": "no result: the hash program stopped before this file"}
    fatal = HashTracker(["a"])
    fatal.feed("@@fatal /x is not a directory")
    assert fatal.failures() == {"a": "/x is not a directory"}

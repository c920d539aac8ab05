"""The two ends of a copy's file stream on a node (models_registry/inspection/programs/stream_file.py and
receive_file.sh): large files go through the Python program, which moves the bytes with splice(2), small
ones and nodes without Python through ``cat`` and the shell program, with the same results and exit codes."""

import importlib.util
import os
import shutil
import socket
import subprocess
import threading

import pytest

from models_registry.inspection import remote
from models_registry.inspection.remote import (
    _BOOTSTRAP,
    _STREAM_B64,
    receive_command,
    remote_command_line,
    send_command,
)
from tests.models_registry import old_pythons

PROGRAM = remote._PROGRAMS / "stream_file.py"


@pytest.fixture
def program():
    spec = importlib.util.spec_from_file_location("stream_file", PROGRAM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def every_file_large(monkeypatch):
    """The stream program for every file, so that the tests need no 64 MiB files."""
    monkeypatch.setattr(remote, "STREAM_PROGRAM_MIN_BYTES", 1)


def copy_through_a_pipe(source, target, size, env=None):
    """Run the send command and the receive command as SSH runs them (one shell line each), joined by a pipe."""
    sender = subprocess.Popen(["sh", "-c", remote_command_line(send_command(str(source), size))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    receiver = subprocess.run(["sh", "-c", remote_command_line(receive_command(str(target), size))],
                              stdin=sender.stdout, capture_output=True, text=True, env=env, timeout=60)
    sender.stdout.close()
    sent_err = sender.stderr.read().decode()
    sender.stderr.close()
    return sender.wait(timeout=60), sent_err, receiver


def test_a_large_file_goes_through_the_stream_program_and_arrives_whole(tmp_path, every_file_large):
    source = tmp_path / "a" / "model-00001-of-00002.safetensors"
    source.parent.mkdir()
    data = os.urandom(3 << 20) + b"tail"
    source.write_bytes(data)
    target = tmp_path / "b" / "deep" / source.name  # the directories are made on the way
    assert "boom-send" in send_command(str(source), len(data))
    assert "boom-receive" in receive_command(str(target), len(data)) and _STREAM_B64 in receive_command(
        str(target), len(data))
    sent, sent_err, received = copy_through_a_pipe(source, target, len(data))
    assert (sent, sent_err, received.returncode, received.stderr) == (0, "", 0, "")
    assert target.read_bytes() == data
    assert not (tmp_path / "b" / "deep" / (source.name + ".boom-part")).exists()


def test_small_files_keep_cat_and_the_shell_receiver(tmp_path):
    assert send_command("/m/config.json", 700) == ["cat", "--", "/m/config.json"]
    assert receive_command("/m/config.json", 700) == ["sh", "-c", remote.RECEIVE_PROGRAM, "boom-receive",
                                                      "/m/config.json", "700"]
    source, target = tmp_path / "config.json", tmp_path / "b" / "config.json"
    source.write_text('{"model_type": "llama"}')
    sent, _, received = copy_through_a_pipe(source, target, source.stat().st_size)
    assert (sent, received.returncode) == (0, 0) and target.read_bytes() == source.read_bytes()


def test_without_python_on_the_node_both_ends_fall_back_to_the_shell(tmp_path, every_file_large):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "cat", "mkdir", "dirname", "wc", "mv", "printf", "["):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    source, target = tmp_path / "w.bin", tmp_path / "b" / "w.bin"
    source.write_bytes(os.urandom(100_000))
    sent, _, received = copy_through_a_pipe(source, target, 100_000, env={"PATH": str(bin_dir)})
    assert (sent, received.returncode, received.stderr) == (0, 0, "")
    assert target.read_bytes() == source.read_bytes()
    _, _, short = copy_through_a_pipe(source, tmp_path / "c" / "w.bin", 100_001, env={"PATH": str(bin_dir)})
    assert short.returncode == 5 and "received 100000 of 100001 bytes" in short.stderr


def test_fewer_bytes_than_the_manifest_says_fail_with_exit_5_and_leave_only_the_part_file(tmp_path,
                                                                                          every_file_large):
    target = tmp_path / "b" / "w.bin"
    result = subprocess.run(["sh", "-c", remote_command_line(receive_command(str(target), 10))], input=b"12345",
                            capture_output=True, timeout=60)
    assert result.returncode == 5 and b"received 5 of 10 bytes" in result.stderr
    assert not target.exists() and (tmp_path / "b" / "w.bin.boom-part").read_bytes() == b"12345"


def test_a_directory_that_cannot_be_made_is_exit_3_and_a_missing_source_is_named(tmp_path, every_file_large):
    (tmp_path / "file").write_text("not a directory")
    result = subprocess.run(["sh", "-c", remote_command_line(receive_command(str(tmp_path / "file" / "x"), 1))],
                            input=b"1", capture_output=True, timeout=60)
    assert result.returncode == 3, result.stderr
    missing = tmp_path / "gone.safetensors"
    result = subprocess.run(["sh", "-c", remote_command_line(send_command(str(missing), 10))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and str(missing) in result.stderr and "Traceback" not in result.stderr


def test_a_sender_whose_reader_went_away_exits_1_without_a_traceback(tmp_path, every_file_large):
    source = tmp_path / "w.bin"
    source.write_bytes(os.urandom(8 << 20))
    read_end, write_end = os.pipe()
    os.close(read_end)
    result = subprocess.run(["sh", "-c", remote_command_line(send_command(str(source), 8 << 20))],
                            stdout=write_end, capture_output=False, stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(write_end)
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_the_program_splices_between_a_pipe_and_a_file_and_grows_the_pipe(tmp_path, program, monkeypatch):
    calls = []
    real_splice = os.splice

    def counting_splice(src, dst, count, *args):
        calls.append(count)
        return real_splice(src, dst, count, *args)

    monkeypatch.setattr(os, "splice", counting_splice)
    data = os.urandom(3 << 20)
    read_end, write_end = os.pipe()
    try:
        program.grow_pipe(read_end)
        import fcntl

        assert fcntl.fcntl(read_end, 1032) == 1 << 20  # F_GETPIPE_SZ
        out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
        writer = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=write_end)
        os.close(write_end)
        write_end = None
        feeder = threading.Thread(target=lambda: (writer.stdin.write(data), writer.stdin.close()))
        feeder.start()
        assert program.move(read_end, out) == len(data)
        feeder.join()
        writer.wait(timeout=60)
        os.close(out)
    finally:
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)
    assert (tmp_path / "out").read_bytes() == data
    assert calls and all(c == 1 << 20 for c in calls)


def test_the_program_reads_and_writes_where_splice_is_refused(tmp_path, program):
    """A session whose standard input is a socket, not a pipe: splice refuses (EINVAL), plain reads work."""
    left, right = socket.socketpair()
    data = os.urandom(1 << 20)
    with left, right:
        sender = threading.Thread(target=lambda: (left.sendall(data), left.shutdown(socket.SHUT_WR)))
        sender.start()
        out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
        try:
            assert program.move(right.fileno(), out) == len(data)
        finally:
            os.close(out)
            sender.join()
    assert (tmp_path / "out").read_bytes() == data


@pytest.mark.parametrize("python", old_pythons() or [pytest.param(None, marks=pytest.mark.skip("no old Python"))])
def test_the_stream_program_runs_on_old_pythons(tmp_path, python):
    source, target = tmp_path / "ü w.bin", tmp_path / "b" / "ü w.bin"
    data = os.urandom(2 << 20)
    source.write_bytes(data)
    sender = subprocess.Popen([python, "-c", _BOOTSTRAP, _STREAM_B64, "send", str(source)], stdout=subprocess.PIPE)
    receiver = subprocess.run([python, "-c", _BOOTSTRAP, _STREAM_B64, "receive", str(target), str(len(data))],
                              stdin=sender.stdout, capture_output=True, text=True, timeout=60)
    sender.stdout.close()
    assert sender.wait(timeout=60) == 0 and receiver.returncode == 0, receiver.stderr
    assert target.read_bytes() == data

"""The SSH transport against real OpenSSH servers on loopback (tests/sshd.py); no mocks.

Under CI=true a missing sshd fails these tests instead of skipping them.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nodes.transports.ssh import (
    AuthFailed,
    CommandTimeout,
    HostKeyMismatch,
    SSHError,
    SSHPool,
    SSHTarget,
    Unreachable,
    quote_argv,
)
from tests import sshd
from tests.sshd import (
    SshdNode,
    free_port,
    generate_private_key,
    openssh_private,
    openssh_public,
    require_sshd,
)
from tests.timing import scaled

# Tests that start sshd or open sockets; the small unit tests at the end are not marked.
integration = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_nodes():
    """Three long-lived nodes for tests that do not change a node; each names itself in BOOM_NODE."""
    require_sshd()
    nodes = [SshdNode(env={"BOOM_NODE": f"node-{i}"}) for i in range(3)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.cleanup()


@pytest.fixture
def node(shared_nodes):
    return shared_nodes[0]


@pytest.fixture
def own_node():
    """A node of this test's own, for tests that restart it or change its keys."""
    require_sshd()
    with SshdNode() as node:
        yield node


@pytest.fixture
def pool():
    pool = SSHPool()
    yield pool
    pool.close_all()


def _client_port(pool: SSHPool, target: SSHTarget) -> str:
    """The local TCP port of the connection the command ran on, as the server saw it."""
    return pool.run(target, "echo $SSH_CLIENT").stdout.split()[1]


# --------------------------------------------------------------------------- running commands


@integration
def test_it_runs_a_command_and_returns_stdout_stderr_and_exit_code(pool, node):
    result = pool.run(node.target(), "echo out; echo err >&2; exit 3")

    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.exit_code == 3
    assert result.host_key == node.host_key_line


@integration
def test_it_sends_a_script_on_stdin_to_bash(pool, node):
    script = 'set -e\nname="$BOOM_NODE"\necho "hello from $name"\necho "$((6 * 7))"\n'

    result = pool.run(node.target(), "bash -s", stdin=script)

    assert result.stdout == "hello from node-0\n42\n"
    assert result.exit_code == 0


@integration
def test_a_command_that_reads_stdin_gets_eof_when_no_stdin_is_given(pool, node):
    result = pool.run(node.target(), "cat; echo done", timeout=5)

    assert result.stdout == "done\n"


@integration
def test_the_second_run_reuses_the_connection(pool, node):
    target = node.target()

    first_port = _client_port(pool, target)
    second_port = _client_port(pool, target)

    assert first_port == second_port  # same TCP connection as the server sees it
    assert pool.connections_opened == 1
    assert pool.open_connections() == 1


@integration
def test_commands_on_a_pooled_connection_start_no_thread_and_leave_no_watchdog_call(pool, node, monkeypatch):
    from nodes.transports.ssh import pool as pool_module

    target = node.target()
    pool.run(target, "true")  # connects (paramiko's transport thread) and starts the shared watchdog
    started = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda thread: started.append(thread.name) or real_start(thread))
    for _ in range(10):
        assert pool.run(target, "echo ok").stdout == "ok\n"
    # A threading.Timer per command used to bound exec_command: a thread started and ended for every probe.
    assert started == [] and pool_module._WATCHDOG.pending() == 0


@integration
def test_idle_connections_are_looked_for_at_most_once_a_second_however_many_commands_run(pool, node, monkeypatch):
    target = node.target()
    pool.run(target, "true")
    looks = []
    real_reap = pool.reap_idle
    monkeypatch.setattr(pool, "reap_idle", lambda: looks.append(1) or real_reap())
    began = time.monotonic()
    for _ in range(20):
        pool.run(target, "true")
    assert len(looks) <= 1 + int(time.monotonic() - began)  # was one look at every connection per command


def test_the_watchdog_calls_at_the_deadlines_in_order_and_never_a_disarmed_call():
    from nodes.transports.ssh.pool import _Watchdog

    watchdog, calls, done = _Watchdog(), [], threading.Event()
    watchdog.arm(0.3, lambda: (calls.append("late"), done.set()))
    watchdog.arm(0.05, lambda: calls.append("soon"))
    disarmed = watchdog.arm(0.1, lambda: calls.append("disarmed"))
    watchdog.disarm(disarmed)
    assert done.wait(scaled(10))
    assert calls == ["soon", "late"] and watchdog.pending() == 0


@integration
def test_a_dead_pooled_connection_is_reopened_transparently(pool, own_node):
    target = own_node.target()
    first_port = _client_port(pool, target)

    own_node.restart()  # kills every session: the pooled transport dies
    result = pool.run(target, "echo $SSH_CLIENT")

    assert result.exit_code == 0
    assert result.stdout.split()[1] != first_port
    assert pool.connections_opened == 2


@integration
def test_a_connection_lost_during_a_command_raises_unreachable_and_the_next_run_reconnects(pool, own_node):
    target = own_node.target()

    with pytest.raises(Unreachable, match="was lost while the command ran"):
        pool.run(target, "kill -9 $PPID; sleep 5")  # kills the sshd process serving this connection

    assert pool.run(target, "echo back").stdout == "back\n"
    assert pool.connections_opened == 2


@integration
def test_a_credential_change_opens_a_new_connection(pool, node):
    pool.run(node.target(key_id="credential-1:v1"), "true")
    pool.run(node.target(key_id="credential-1:v2"), "true")

    assert pool.connections_opened == 2


@integration
def test_closing_a_target_drops_its_connection_and_the_next_run_reconnects(pool, node):
    target = node.target()
    pool.run(target, "true")

    pool.close(target)

    assert pool.open_connections() == 0
    assert pool.run(target, "echo again").stdout == "again\n"
    assert pool.connections_opened == 2


@integration
def test_twenty_parallel_runs_from_threads_on_three_nodes_all_succeed(pool, shared_nodes):
    targets = [n.target() for n in shared_nodes]
    start = threading.Barrier(20)

    def probe(i: int) -> tuple[int, str]:
        start.wait(timeout=10)  # all threads hit the pool at once, connections included
        result = pool.run(targets[i % 3], ["bash", "-c", 'echo "$BOOM_NODE $0"', str(i)], timeout=30)
        assert result.exit_code == 0, result.stderr
        return i, result.stdout

    with ThreadPoolExecutor(max_workers=20) as executor:
        results = dict(executor.map(probe, range(20)))

    assert results == {i: f"node-{i % 3} {i}\n" for i in range(20)}
    # One connection per node even though the first runs raced each other.
    assert pool.connections_opened == 3


@integration
def test_five_megabytes_of_stdin_stdout_and_stderr_arrive_intact(pool, node):
    payload = base64.b64encode(os.urandom(3_932_160)).decode()  # 5 MiB of text
    assert len(payload) == 5 * 1024 * 1024

    result = pool.run(node.target(), "tee /dev/stderr", stdin=payload, timeout=60)

    assert result.exit_code == 0
    assert result.stdout == payload
    assert result.stderr == payload


@integration
def test_a_command_killed_by_a_signal_reports_exit_code_minus_one(pool, node):
    result = pool.run(node.target(), "echo before; kill -9 $$")

    assert result.stdout == "before\n"
    assert result.exit_code == -1


# --------------------------------------------------------------------------- host keys


@integration
def test_first_contact_without_a_pin_reports_the_host_key_seen(pool, node):
    result = pool.run(node.target(pinned=False), "true")

    assert result.host_key == node.host_key_line


@integration
def test_a_pinned_key_that_differs_is_refused_before_any_command_runs(pool, own_node, tmp_path):
    marker = tmp_path / "ran"
    impostor_pin = openssh_public(generate_private_key("ed25519"))
    target = own_node.target(pinned_host_key=impostor_pin)

    with pytest.raises(HostKeyMismatch) as caught:
        pool.run(target, ["touch", str(marker)])

    assert not marker.exists()
    # Not even authentication happened: sshd logged no accepted login.
    assert "Accepted publickey" not in own_node.log_text()
    error = caught.value
    assert error.seen == own_node.host_key_line
    assert error.expected == impostor_pin
    assert "expected ssh-ed25519 SHA256:" in error.reason
    assert "seen ssh-ed25519 SHA256:" in error.reason
    assert pool.open_connections() == 0


@integration
def test_rotating_the_host_key_makes_the_pinned_target_fail_with_a_mismatch(pool, own_node, tmp_path):
    old_pin = own_node.host_key_line
    pool.run(own_node.target(), "true")

    new_line = own_node.rotate_host_key()
    marker = tmp_path / "ran"
    with pytest.raises(HostKeyMismatch) as caught:
        pool.run(own_node.target(pinned_host_key=old_pin), ["touch", str(marker)])

    assert not marker.exists()
    assert caught.value.seen == new_line
    # After the operator accepts the new key, the node works again.
    assert pool.run(own_node.target(pinned_host_key=new_line), "echo ok").stdout == "ok\n"


@integration
def test_a_pinned_rsa_host_key_is_used_even_when_the_server_prefers_ed25519(pool):
    require_sshd()
    with SshdNode(host_key_types=("ed25519", "rsa")) as node:
        rsa_line = node.host_key_lines["rsa"]

        result = pool.run(node.target(pinned_host_key=rsa_line), "true")

    assert result.host_key == rsa_line


# --------------------------------------------------------------------------- failures


@integration
def test_an_unreachable_port_raises_unreachable_quickly(pool):
    target = SSHTarget(
        host="127.0.0.1",
        port=free_port(),
        username="root",
        private_key=openssh_private(generate_private_key()),
        passphrase=None,
        pinned_host_key=None,
        connect_timeout=5.0,
    )
    started = time.monotonic()

    with pytest.raises(Unreachable) as caught:
        pool.run(target, "true")

    assert time.monotonic() - started < target.connect_timeout
    assert "refused" in caught.value.reason


@integration
def test_a_server_that_never_speaks_ssh_raises_unreachable_after_the_connect_timeout(pool):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        target = SSHTarget(
            host="127.0.0.1",
            port=listener.getsockname()[1],
            username="root",
            private_key=openssh_private(generate_private_key()),
            passphrase=None,
            pinned_host_key=None,
            connect_timeout=1.0,
        )
        started = time.monotonic()

        with pytest.raises(Unreachable) as caught:
            pool.run(target, "true")

    assert time.monotonic() - started < scaled(5, below=20)
    assert "handshake" in caught.value.reason


@integration
def test_a_wrong_client_key_raises_auth_failed(pool, node):
    stranger_key = openssh_private(generate_private_key("ed25519"))

    with pytest.raises(AuthFailed) as caught:
        pool.run(node.target(private_key=stranger_key), "true")

    reason = caught.value.reason
    assert "refused the key SHA256:" in reason
    assert stranger_key not in reason and "PRIVATE KEY" not in reason
    assert caught.value.host_key == node.host_key_line


@integration
def test_an_unusable_stored_key_raises_auth_failed_with_the_key_problem(pool, node):
    with pytest.raises(AuthFailed) as caught:
        pool.run(node.target(private_key="not a key"), "true")

    assert "not a private key this console understands" in caught.value.reason


@integration
def test_a_command_timeout_raises_and_a_later_command_on_the_same_target_works(pool, node):
    target = node.target()
    pool.run(target, "true")
    started = time.monotonic()

    with pytest.raises(CommandTimeout) as caught:
        pool.run(target, "sleep 30", timeout=1)

    assert time.monotonic() - started < scaled(3, below=30)  # not the 30 s of the sleep
    assert "did not finish within 1 s" in caught.value.reason
    assert pool.run(target, "echo still here").stdout == "still here\n"
    assert pool.connections_opened == 1  # the connection survived the timeout


@integration
def test_argv_with_shell_metacharacters_is_passed_literally_and_creates_no_file(pool, node, tmp_path):
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    tricks = [f"; touch {marker}", f"$(touch {marker})", f"`touch {marker}`", f"| touch {marker}", "'\"\\"]

    result = pool.run(node.target(), ["printf", "%s\\n", *tricks])

    assert result.stdout.splitlines() == tricks
    assert not marker.exists()
    # Control: the remote shell does see this filesystem, so the check above means something.
    pool.run(node.target(), f"touch {marker}")
    assert Path(marker).exists()


def test_ssh_errors_share_one_base_class():
    for cls in (AuthFailed, CommandTimeout, HostKeyMismatch, Unreachable):
        assert issubclass(cls, SSHError)


# --------------------------------------------------------------------------- small pieces


def test_quote_argv_quotes_each_argument_for_the_shell():
    assert quote_argv(["echo", "a b", "; rm -rf /", "it's"]) == "echo 'a b' '; rm -rf /' 'it'\"'\"'s'"


@pytest.mark.parametrize("bad", ["echo hi", [], ["echo", 1], ["echo", "a\0b"]])
def test_quote_argv_refuses_anything_but_a_list_of_strings(bad):
    with pytest.raises((TypeError, ValueError)):
        quote_argv(bad)


def test_a_target_repr_does_not_show_the_private_key_or_passphrase():
    target = SSHTarget(
        host="h",
        port=22,
        username="u",
        private_key="-----BEGIN SECRET",
        passphrase="hunter2",
        pinned_host_key=None,
    )

    assert "SECRET" not in repr(target)
    assert "hunter2" not in repr(target)


def test_require_sshd_fails_under_ci_when_sshd_is_missing(monkeypatch):
    monkeypatch.setattr(sshd, "sshd_available", lambda: False)
    monkeypatch.setenv("CI", "true")

    with pytest.raises(pytest.fail.Exception, match="sshd missing under CI"):
        require_sshd()


def test_require_sshd_skips_outside_ci_when_sshd_is_missing(monkeypatch):
    monkeypatch.setattr(sshd, "sshd_available", lambda: False)
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception):
        require_sshd()

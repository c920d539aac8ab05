"""Bulk pipes through the OpenSSH client (nodes/transports/ssh/openssh.py) against real sshd on loopback.

Under CI=true a missing sshd fails these tests instead of skipping them.
"""

from __future__ import annotations

import os

import pytest

from nodes.transports.ssh import AuthFailed, HostKeyMismatch, SSHError, SSHTransport, Unreachable, openssh
from nodes.transports.ssh.pool import ChannelPipe
from tests.sshd import SshdNode, free_port, generate_private_key, openssh_private, require_sshd

pytestmark = pytest.mark.integration


@pytest.fixture
def node(tmp_path):
    """A node whose login shell reads no rc file (a HOME of its own): these tests end commands as soon as they
    start, and this machine's root ~/.bashrc runs `pyenv init` in every SSH command's shell."""
    require_sshd()
    (tmp_path / "home").mkdir()
    with SshdNode(env={"HOME": str(tmp_path / "home")}) as daemon:
        yield daemon


def read_all(pipe) -> bytes:
    data = b""
    while chunk := pipe.read(1 << 16):
        data += chunk
    return data


def test_an_openssh_pipe_streams_bytes_both_ways_and_reports_the_exit_code(node):
    payload = os.urandom(3 << 20) + b"\x00\xff"
    with openssh.open_pipe(node.target(), "cat; echo done >&2; exit 3", timeout=20) as pipe:
        pipe.write(payload)
        pipe.close_write()
        data = read_all(pipe)
        result = pipe.wait(20)
    assert data == payload
    assert result.exit_code == 3 and result.stderr == "done\n" and result.host_key == node.host_key_line


def test_an_openssh_pipe_refuses_a_host_key_other_than_the_pinned_one_before_authenticating(node):
    other = SshdNode()
    other._prepare()  # a second host key, never started
    try:
        impostor_pin = other.host_key_line
    finally:
        other.cleanup()
    with openssh.open_pipe(node.target(pinned_host_key=impostor_pin), "echo hello", timeout=20) as pipe, \
            pytest.raises(HostKeyMismatch):
        read_all(pipe)
        pipe.wait(20)
    assert "Accepted publickey" not in node.log_text()


def test_an_openssh_pipe_never_contacts_a_node_whose_host_key_is_not_pinned(node):
    with pytest.raises(SSHError, match="no pinned host key"):
        openssh.open_pipe(node.target(pinned=False), "echo hello")


def test_a_key_the_node_does_not_accept_is_an_auth_failure(node):
    stranger = openssh_private(generate_private_key())
    with openssh.open_pipe(node.target(private_key=stranger), "echo hello", timeout=20) as pipe, \
            pytest.raises(AuthFailed, match="refused the key"):
        read_all(pipe)
        pipe.wait(20)


def test_a_closed_port_is_unreachable(node):
    with openssh.open_pipe(node.target(port=free_port()), "echo hello", timeout=20) as pipe, \
            pytest.raises(Unreachable):
        read_all(pipe)
        pipe.wait(20)


def memory_files() -> list[str]:
    """The in-memory files this process holds open."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return [link for link in links if link.startswith("/memfd:")]


def test_the_key_reaches_ssh_from_memory_only_never_from_its_arguments_or_a_file(node):
    key_body = node.client_key_pem.strip().splitlines()[1]
    before = memory_files()
    with openssh.open_pipe(node.target(), "cat", timeout=20) as pipe:
        argv = list(pipe._proc.args)  # what ssh was started with
        identity = next(a.split("=", 1)[1] for a in argv if a.startswith("IdentityFile="))
        held = os.readlink(identity)
        pipe.write(b"ping")
        pipe.close_write()
        assert read_all(pipe) == b"ping"  # ssh read the key through that path and logged in
        assert pipe.wait(20).exit_code == 0
    assert identity.startswith(f"/proc/{os.getpid()}/fd/")
    assert held.startswith("/memfd:boom-ssh-key")  # an anonymous in-memory file, on no filesystem
    assert not any(key_body in a for a in argv)
    assert memory_files() == before  # closed with the pipe


def test_large_pipes_go_through_openssh_and_small_ones_through_the_pooled_connection(node, settings):
    settings.CONSOLE_COPY_SSH_CLIENT = "auto"
    settings.CONSOLE_COPY_OPENSSH_MIN_BYTES = 1 << 20
    transport = SSHTransport(node.target())
    try:
        with transport.open_pipe("cat >/dev/null", timeout=20, size=2 << 20) as large:
            assert isinstance(large, openssh.OpenSSHPipe)
        with transport.open_pipe("cat >/dev/null", timeout=20, size=4096) as small:
            assert isinstance(small, ChannelPipe)
        settings.CONSOLE_COPY_SSH_CLIENT = "paramiko"
        with transport.open_pipe("cat >/dev/null", timeout=20, size=2 << 20) as large:
            assert isinstance(large, ChannelPipe)
    finally:
        transport.bulk_pool.close(node.target())


def test_the_ssh_command_line_names_no_user_configuration_and_no_forwarding():
    from nodes.transports.ssh import SSHTarget

    target = SSHTarget(host="10.0.0.7", port=2222, username="ops", private_key="", passphrase=None,
                       pinned_host_key="ssh-ed25519 AAAA", connect_timeout=7.0)
    argv = openssh.argv_for(target, "cat '/m/a b'", 5, 6)
    assert argv[:3] == ["ssh", "-F", "/dev/null"] and argv[-3:] == ["--", "10.0.0.7", "cat '/m/a b'"]
    options = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("cat"))
    assert options["StrictHostKeyChecking"] == "yes" and options["BatchMode"] == "yes"
    assert options["IdentityAgent"] == "none" and options["ForwardAgent"] == "no"
    assert options["ConnectTimeout"] == "7" and options["UserKnownHostsFile"] == f"/proc/{os.getpid()}/fd/6"


def test_aes_gcm_is_offered_first_on_a_cpu_with_aes_instructions_and_a_set_list_goes_to_ssh_as_it_is(monkeypatch):
    monkeypatch.setattr(openssh, "_cpu_has_aes", lambda: True)
    assert openssh.ciphers("auto").startswith("aes128-gcm@openssh.com,")
    monkeypatch.setattr(openssh, "_cpu_has_aes", lambda: False)
    assert openssh.ciphers("auto") is None  # OpenSSH's own order
    assert openssh.ciphers("chacha20-poly1305@openssh.com") == "chacha20-poly1305@openssh.com"
    from nodes.transports.ssh import SSHTarget

    target = SSHTarget(host="h", port=22, username="u", private_key="", passphrase=None, pinned_host_key="k x")
    assert "Ciphers=aes256-ctr" in openssh.argv_for(target, "true", 5, 6, cipher_list="aes256-ctr")
    assert not any(a.startswith("Ciphers=") for a in openssh.argv_for(target, "true", 5, 6))


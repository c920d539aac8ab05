"""Private-key parsing and fingerprints (nodes.keys) and encryption at rest (nodes.crypto).

Keys come from the real ``ssh-keygen`` where it can write the format, so the
formats and fingerprints are checked against OpenSSH itself, not against our
own understanding of them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

from nodes.crypto import SecretBox, SecretBoxError, default_box
from nodes.keys import (
    InvalidHostKey,
    InvalidPrivateKey,
    KeyProblem,
    PassphraseRequired,
    WrongPassphrase,
    fingerprint,
    host_key_fingerprint,
    load_private_key,
    normalise_private_key,
    public_key_line,
)
from tests.sshd import _in_ci

PASSPHRASE = "correct horse battery staple"
KEY_CLASSES = {"ed25519": paramiko.Ed25519Key, "rsa": paramiko.RSAKey, "ecdsa": paramiko.ECDSAKey}


def _require_ssh_keygen() -> str:
    path = shutil.which("ssh-keygen")
    if path is None:
        if _in_ci():
            pytest.fail("ssh-keygen missing under CI (install openssh-client)", pytrace=False)
        pytest.skip("ssh-keygen (openssh-client) is not installed")
    return path


@pytest.fixture(scope="module")
def keydir(tmp_path_factory) -> Path:
    """Keys in every format the console accepts, written by ssh-keygen (ed25519 PKCS#8 by cryptography).

    ``<kind>.<format>[.enc]`` with its ``.pub`` next to it; ``.enc`` files use PASSPHRASE.
    """
    keygen = _require_ssh_keygen()
    directory = tmp_path_factory.mktemp("keys")
    for kind in ("ed25519", "rsa", "ecdsa"):
        for fmt in ("openssh", "pem"):
            if kind == "ed25519" and fmt == "pem":
                continue  # ssh-keygen writes ed25519 only in OpenSSH format
            for suffix, passphrase in (("", ""), (".enc", PASSPHRASE)):
                path = directory / f"{kind}.{fmt}{suffix}"
                args = [keygen, "-q", "-t", kind, "-N", passphrase, "-f", str(path), "-C", "test"]
                if kind == "rsa":
                    args += ["-b", "2048"]
                if fmt == "pem":
                    args += ["-m", "PEM"]  # traditional "RSA/EC PRIVATE KEY" blocks
                subprocess.run(args, check=True, capture_output=True)
    key = ed25519.Ed25519PrivateKey.generate()
    for suffix, encryption in (
        ("", serialization.NoEncryption()),
        (".enc", serialization.BestAvailableEncryption(PASSPHRASE.encode())),
    ):
        path = directory / f"ed25519.pem{suffix}"
        path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        )
        path.with_name(path.name + ".pub").write_bytes(
            key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        )
    return directory


def _keygen_fingerprint(pub: Path) -> str:
    out = subprocess.run(
        [shutil.which("ssh-keygen"), "-lf", str(pub)], check=True, capture_output=True, text=True
    ).stdout
    return out.split()[1]


KINDS_AND_FORMATS = [(k, f) for k in ("ed25519", "rsa", "ecdsa") for f in ("openssh", "pem")]


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize(("kind", "fmt"), KINDS_AND_FORMATS)
def test_it_loads_unencrypted_keys_in_openssh_and_pem_formats(keydir, kind, fmt):
    path = keydir / f"{kind}.{fmt}"

    pkey = load_private_key(path.read_text(), None)

    assert isinstance(pkey, KEY_CLASSES[kind])
    assert fingerprint(pkey) == _keygen_fingerprint(path.with_name(path.name + ".pub"))
    pub_type, pub_b64 = (path.with_name(path.name + ".pub")).read_text().split()[:2]
    assert public_key_line(pkey) == f"{pub_type} {pub_b64}"


@pytest.mark.parametrize(("kind", "fmt"), KINDS_AND_FORMATS)
def test_it_loads_encrypted_keys_with_the_right_passphrase(keydir, kind, fmt):
    path = keydir / f"{kind}.{fmt}.enc"

    pkey = load_private_key(path.read_text(), PASSPHRASE)

    assert fingerprint(pkey) == _keygen_fingerprint(path.with_name(path.name + ".pub"))


@pytest.mark.parametrize(("kind", "fmt"), KINDS_AND_FORMATS)
@pytest.mark.parametrize("passphrase", [None, ""])
def test_an_encrypted_key_without_passphrase_raises_passphrase_required(keydir, kind, fmt, passphrase):
    with pytest.raises(PassphraseRequired, match="the key is encrypted: send its passphrase"):
        load_private_key((keydir / f"{kind}.{fmt}.enc").read_text(), passphrase)


@pytest.mark.parametrize(("kind", "fmt"), KINDS_AND_FORMATS)
def test_a_wrong_passphrase_raises_wrong_passphrase_without_echoing_it(keydir, kind, fmt):
    with pytest.raises(WrongPassphrase) as caught:
        load_private_key((keydir / f"{kind}.{fmt}.enc").read_text(), "not the passphrase")

    assert "not the passphrase" not in str(caught.value)


def test_a_passphrase_sent_for_an_unencrypted_key_is_ignored(keydir):
    pkey = load_private_key((keydir / "ed25519.openssh").read_text(), "unneeded")

    assert isinstance(pkey, paramiko.Ed25519Key)


def test_a_key_pasted_with_windows_line_endings_and_indentation_loads(keydir):
    text = "\r\n".join("  " + line for line in (keydir / "rsa.pem").read_text().splitlines())

    assert isinstance(load_private_key(text, None), paramiko.RSAKey)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("garbage", "no '-----BEGIN ... PRIVATE KEY-----' block found"),
        ("", "no '-----BEGIN"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n",
            "cannot be read",
        ),
        ("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", "cannot be read"),
        (
            "-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n",
            "DSA keys are not supported",
        ),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "is not a private key"),
        ("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n", "PuTTY"),
    ],
)
def test_garbage_raises_invalid_private_key_with_a_hint(text, hint):
    with pytest.raises(InvalidPrivateKey) as caught:
        load_private_key(text, None)

    assert str(caught.value).startswith("not a private key this console understands: ")
    assert hint in str(caught.value)


def test_a_public_key_pasted_by_mistake_is_named_as_such(keydir):
    with pytest.raises(InvalidPrivateKey, match="this is a public key"):
        load_private_key((keydir / "ed25519.openssh.pub").read_text(), None)


def test_an_unsupported_key_type_raises_invalid_private_key():
    pem = (
        ed448.Ed448PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )

    with pytest.raises(InvalidPrivateKey, match="not supported"):
        load_private_key(pem, None)


def test_key_problems_are_value_errors_for_callers_that_validate_input():
    for cls in (InvalidPrivateKey, PassphraseRequired, WrongPassphrase):
        assert issubclass(cls, KeyProblem)
        assert issubclass(cls, ValueError)


# --------------------------------------------------------------------------- normalising


@pytest.mark.parametrize(("kind", "fmt"), KINDS_AND_FORMATS)
def test_normalising_strips_the_passphrase_and_keeps_the_key(keydir, kind, fmt):
    original = (keydir / f"{kind}.{fmt}.enc").read_text()

    normalised = normalise_private_key(original, PASSPHRASE)

    assert normalised.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    again = load_private_key(normalised, None)  # no passphrase needed any more
    assert fingerprint(again) == fingerprint(load_private_key(original, PASSPHRASE))


def test_a_normalised_key_is_accepted_by_ssh_keygen(keydir, tmp_path):
    path = tmp_path / "normalised"
    path.write_text(normalise_private_key((keydir / "ecdsa.pem.enc").read_text(), PASSPHRASE))
    path.chmod(0o600)

    public = subprocess.run(
        [shutil.which("ssh-keygen"), "-y", "-P", "", "-f", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    assert public.split()[:2] == (keydir / "ecdsa.pem.enc.pub").read_text().split()[:2]


# --------------------------------------------------------------------------- host keys


def test_host_key_fingerprint_matches_ssh_keygen(keydir):
    for kind in ("ed25519", "rsa", "ecdsa"):
        pub = keydir / f"{kind}.openssh.pub"
        line = " ".join(pub.read_text().split()[:2])

        assert host_key_fingerprint(line) == _keygen_fingerprint(pub)


def test_host_key_fingerprint_ignores_a_trailing_comment(keydir):
    pub = keydir / "ed25519.openssh.pub"

    assert host_key_fingerprint(pub.read_text()) == _keygen_fingerprint(pub)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "ssh-ed25519",
        "ssh-ed25519 !!!notbase64",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIG9IPJayFWcDnb8rykPF1d3Pw88oEG/IXoS9K8RtILWG",
    ],
)
def test_a_malformed_host_key_line_raises_invalid_host_key(line):
    with pytest.raises(InvalidHostKey):
        host_key_fingerprint(line)


# --------------------------------------------------------------------------- SecretBox


def test_secret_box_round_trips_text():
    box = SecretBox("console secret")
    plaintext = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret material ✓\n"

    token = box.encrypt(plaintext)

    assert box.decrypt(token) == plaintext
    assert "secret material" not in token
    assert box.encrypt(plaintext) != token  # random IV each time


def test_secret_box_with_the_wrong_secret_cannot_decrypt():
    token = SecretBox("right").encrypt("payload")

    with pytest.raises(SecretBoxError) as caught:
        SecretBox("wrong").decrypt(token)

    assert "payload" not in str(caught.value)


@pytest.mark.parametrize("token", ["", "not a token", "gAAAAAB" + "A" * 80])
def test_secret_box_rejects_damaged_tokens(token):
    with pytest.raises(SecretBoxError):
        SecretBox("secret").decrypt(token)


def test_secret_box_rotation_reads_old_blobs_and_rewrites_them_with_the_new_secret():
    old_token = SecretBox("old").encrypt("payload")
    rotated_box = SecretBox("new", old_secrets=["old"])

    assert rotated_box.decrypt(old_token) == "payload"
    new_token = rotated_box.rotate(old_token)
    assert SecretBox("new").decrypt(new_token) == "payload"
    with pytest.raises(SecretBoxError):
        SecretBox("old").decrypt(rotated_box.encrypt("fresh"))  # new blobs use the new secret


def test_secret_box_refuses_an_empty_secret():
    with pytest.raises(ValueError):
        SecretBox("")


def test_secret_box_repr_shows_no_key_material():
    assert "sekrit" not in repr(SecretBox("sekrit"))


def test_default_box_uses_the_console_secret_key_setting(settings):
    settings.CONSOLE_SECRET_KEY = "from settings"
    token = default_box().encrypt("payload")

    assert SecretBox("from settings").decrypt(token) == "payload"

    settings.CONSOLE_SECRET_KEY = "rotated"
    settings.CONSOLE_OLD_SECRET_KEYS = ["from settings"]
    assert default_box().decrypt(token) == "payload"

"""SSHSIG verification: what ssh-keygen signs passes, and every way a signature can be wrong is
refused with a StoreError (a 4xx from the API), never another exception."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from slipway.store.errors import Forbidden, Invalid, StoreError
from slipway.store.sshsig import verify_signature
from tests.keys import generate, sign

MESSAGE = "slipway-key-challenge-v1:7:2000000000:nonce:mac"
NAMESPACE = "slipway-key"


def public(private: Path) -> str:
    return Path(f"{private}.pub").read_text()


def string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def armor(blob: bytes) -> str:
    text = base64.b64encode(blob).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return "\n".join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----"])


def blob_of(armored: str) -> bytes:
    return base64.b64decode("".join(armored.strip().splitlines()[1:-1]))


def crafted(
    key: asyncssh.SSHKey,
    *,
    namespace: bytes = NAMESPACE.encode(),
    hash_name: bytes = b"sha512",
    sig_algorithm: bytes | None = None,
    version: int = 1,
    trailing: bytes = b"",
) -> str:
    """A signature of MESSAGE made field by field, to get one thing wrong at a time."""
    digest = hashlib.new(hash_name.decode(), MESSAGE.encode()).digest()
    signed = b"SSHSIG" + b"".join(map(string, [namespace, b"", hash_name, digest]))
    signature = key.sign(signed, sig_algorithm or key.sig_algorithms[0])
    fields = [key.public_data, namespace, b"", hash_name, signature]
    return armor(b"SSHSIG" + struct.pack(">I", version) + b"".join(map(string, fields)) + trailing)


@pytest.fixture(scope="module")
def rsa() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-rsa", key_size=2048)


@pytest.mark.parametrize(
    ("kind", "bits", "options"),
    [
        ("ed25519", None, ()),
        ("ed25519", None, ("-O", "hashalg=sha256")),
        ("ecdsa", 256, ()),
        ("ecdsa", 384, ()),
        ("ecdsa", 521, ()),
        ("rsa", 2048, ()),
        ("rsa", 2048, ("-O", "hashalg=sha256")),
    ],
)
def test_what_ssh_keygen_signs_verifies(kind: str, bits: int | None, options: tuple[str]) -> None:
    private = generate(kind, bits)
    signature = sign(private, MESSAGE, NAMESPACE, options)
    verify_signature(signature, MESSAGE.encode(), NAMESPACE, public(private))
    with pytest.raises(Forbidden, match="does not match"):
        verify_signature(signature, MESSAGE.encode() + b"x", NAMESPACE, public(private))


def test_a_signature_by_another_key_is_refused() -> None:
    signature = sign(generate("ed25519"), MESSAGE)
    with pytest.raises(Forbidden, match="another key than the one being added"):
        verify_signature(signature, MESSAGE.encode(), NAMESPACE, public(generate("ed25519")))


def test_crafted_signatures_verify_when_nothing_is_wrong(rsa: asyncssh.SSHKey) -> None:
    """So that each refusal below is for the one thing made wrong."""
    key_text = rsa.export_public_key().decode()
    verify_signature(crafted(rsa), MESSAGE.encode(), NAMESPACE, key_text)
    verify_signature(
        crafted(rsa, sig_algorithm=b"rsa-sha2-512"), MESSAGE.encode(), NAMESPACE, key_text
    )


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"sig_algorithm": b"ssh-rsa"}, Forbidden, "not SHA-1"),
        ({"namespace": b"git"}, Forbidden, "for another use \\('git'\\)"),
        ({"namespace": b"file"}, Forbidden, "another use"),
        ({"hash_name": b"sha1"}, Invalid, "sha256 or sha512"),
        ({"version": 2}, Invalid, "version 2 is not supported"),
        ({"trailing": b"\0"}, Invalid, "trailing data"),
    ],
)
def test_a_wrong_field_is_refused(
    rsa: asyncssh.SSHKey, change: dict[str, Any], error: type[StoreError], message: str
) -> None:
    key_text = rsa.export_public_key().decode()
    with pytest.raises(error, match=message):
        verify_signature(crafted(rsa, **change), MESSAGE.encode(), NAMESPACE, key_text)


def test_every_corrupted_byte_is_refused() -> None:
    private = generate("ed25519")
    blob = blob_of(sign(private, MESSAGE))
    for position in range(len(blob)):
        corrupted = bytearray(blob)
        corrupted[position] ^= 0x01
        with pytest.raises(StoreError):
            verify_signature(armor(bytes(corrupted)), MESSAGE.encode(), NAMESPACE, public(private))
    for size in range(len(blob)):
        with pytest.raises(StoreError):
            verify_signature(armor(blob[:size]), MESSAGE.encode(), NAMESPACE, public(private))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "armored SSH signature"),
        ("not a signature", "armored SSH signature"),
        ("-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----", "armored"),
        ("-----BEGIN SSH SIGNATURE-----\n%%%%\n-----END SSH SIGNATURE-----", "base64"),
        ("-----BEGIN SSH SIGNATURE-----\nAAAA\u00e9\n-----END SSH SIGNATURE-----", "base64"),
        (armor(b"SSHSIH\0\0\0\1"), "not an SSH signature"),
        (armor(b"SSH"), "truncated"),
    ],
)
def test_what_is_not_a_signature_is_invalid(text: str, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        verify_signature(text, MESSAGE.encode(), NAMESPACE, public(generate("ed25519")))

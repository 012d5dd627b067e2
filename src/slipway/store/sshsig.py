"""Checking an OpenSSH signature (what ``ssh-keygen -Y sign`` prints; the format is OpenSSH's
PROTOCOL.sshsig): it proves that whoever adds a public key holds its private half."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

import asyncssh

from slipway.store.errors import Forbidden, Invalid

MAGIC = b"SSHSIG"
VERSION = 1
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
HASHES = {b"sha256", b"sha512"}
# As OpenSSH: never the legacy SHA-1 "ssh-rsa" signature algorithm.
RSA_SIGNATURES = {b"rsa-sha2-256", b"rsa-sha2-512"}


def verify_signature(armored: str, message: bytes, namespace: str, public_key: str) -> None:
    """Refuse unless ``armored`` signs ``message`` in ``namespace`` with ``public_key``."""
    blob = _Reader(_dearmor(armored))
    if blob.take(len(MAGIC)) != MAGIC:
        raise Invalid("not an SSH signature (it must come from ssh-keygen -Y sign)")
    version = blob.uint32()
    if version != VERSION:
        raise Invalid(f"SSH signature version {version} is not supported")
    signer, signed_namespace, _reserved, hash_name, signature = [blob.string() for _ in range(5)]
    blob.end()
    key = asyncssh.import_public_key(public_key)
    if signer != key.public_data:
        raise Forbidden("the signature was made with another key than the one being added")
    if signed_namespace != namespace.encode():
        raise Forbidden(
            f"the signature is for another use ({signed_namespace.decode(errors='replace')!r}); "
            f"sign with ssh-keygen -Y sign -n {namespace}"
        )
    if hash_name not in HASHES:
        raise Invalid("the signature's hash algorithm must be sha256 or sha512")
    if key.algorithm == b"ssh-rsa" and _Reader(signature).string() not in RSA_SIGNATURES:
        raise Forbidden("RSA signatures must use rsa-sha2-256 or rsa-sha2-512, not SHA-1")
    # The reserved field is not part of what was signed (OpenSSH signs an empty one).
    digest = hashlib.new(hash_name.decode(), message).digest()
    signed = MAGIC + b"".join(map(_string, [namespace.encode(), b"", hash_name, digest]))
    if not key.verify(signed, signature):
        raise Forbidden("the signature does not match this key and challenge")


def _dearmor(armored: str) -> bytes:
    lines = armored.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != BEGIN or lines[-1].strip() != END:
        raise Invalid(f"the signature must be an armored SSH signature ({BEGIN} ...)")
    try:
        return base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("the SSH signature is not valid base64") from None


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class _Reader:
    """SSH wire-format fields (RFC 4251), refusing truncated or trailing data."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, size: int) -> bytes:
        if self.position + size > len(self.data):
            raise Invalid("the SSH signature is truncated")
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())

    def end(self) -> None:
        if self.position != len(self.data):
            raise Invalid("the SSH signature has trailing data")

"""The gateway's host keys: ed25519 and RSA, generated on first start, mode 0600.

The RSA key signs with SHA-2 only (``rsa-sha2-256/512``), never SHA-1 ``ssh-rsa``, as
current OpenSSH servers do.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

KEYS: tuple[tuple[str, str, dict[str, int]], ...] = (
    ("ssh-ed25519", "ssh_host_ed25519_key", {}),
    ("ssh-rsa", "ssh_host_rsa_key", {"key_size": 3072}),
)


def load_or_create(directory: Path) -> list[asyncssh.SSHKey]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = []
    for algorithm, name, options in KEYS:
        path = directory / name
        if not path.exists():
            key = asyncssh.generate_private_key(algorithm, comment="slipway gateway", **options)
            _write_private(path, key.export_private_key())
            (directory / f"{name}.pub").write_bytes(key.export_public_key())
        keys.append(asyncssh.read_private_key(str(path)))
    return keys


def keypairs(directory: Path) -> list[asyncssh.SSHKeyPair]:
    """The host keys as asyncssh offers them, without SHA-1 signatures."""
    pairs = list(asyncssh.load_keypairs(load_or_create(directory)))
    for pair in pairs:
        pair.host_key_algorithms = [
            algorithm for algorithm in pair.host_key_algorithms if algorithm != b"ssh-rsa"
        ]
    return pairs


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)

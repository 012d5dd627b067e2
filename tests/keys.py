"""SSH public keys for tests, generated once per run with ssh-keygen (and cryptography for
the DSA key that current OpenSSH no longer generates)."""

from __future__ import annotations

import subprocess
import tempfile
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa

KEY_DIR = Path(tempfile.mkdtemp(prefix="slipway-keys-"))


def generate(kind: str, bits: int | None = None, comment: str = "test@slipway") -> Path:
    """A new key pair; returns the private key's path (the public one ends in .pub)."""
    path = KEY_DIR / f"{kind}-{bits or 'default'}-{len(list(KEY_DIR.iterdir()))}"
    argv = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)]
    if bits:
        argv += ["-b", str(bits)]
    subprocess.run(argv, check=True)
    return path


@cache
def public(kind: str, bits: int | None = None) -> str:
    """A public key line of this kind, the same for the whole run."""
    return Path(f"{generate(kind, bits)}.pub").read_text().strip()


def fresh_public(kind: str = "ed25519") -> str:
    return Path(f"{generate(kind)}.pub").read_text().strip()


@cache
def dsa_public() -> str:
    key = dsa.generate_private_key(key_size=1024).public_key()  # noqa: S505 - to be refused
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()

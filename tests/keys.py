"""SSH keys for tests, generated with ssh-keygen (and cryptography for the DSA key that current
OpenSSH no longer generates), and the signatures that prove their possession."""

from __future__ import annotations

import subprocess
import tempfile
from functools import cache
from pathlib import Path

import httpx
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


def sign(
    private: Path, message: str, namespace: str = "slipway-key", options: tuple[str, ...] = ()
) -> str:
    """What `ssh-keygen -Y sign` prints for this message (options: e.g. -O hashalg=sha256)."""
    argv = ["ssh-keygen", "-Y", "sign", "-f", str(private), "-n", namespace, *options]
    return subprocess.run(
        argv, input=message.encode(), capture_output=True, check=True
    ).stdout.decode()


def proven_key(api: httpx.Client, private: Path, name: str | None = None) -> dict[str, str | None]:
    """A POST /v1/keys body with its proof of possession: a new challenge, signed with the key."""
    challenge = api.post("/v1/keys/challenge").raise_for_status().json()["challenge"]
    return {
        "public_key": Path(f"{private}.pub").read_text(),
        "name": name,
        "challenge": challenge,
        "signature": sign(private, challenge),
    }

"""Parsing users' SSH public keys with asyncssh: only key types the gateway accepts."""

from __future__ import annotations

from dataclasses import dataclass

import asyncssh

from slipway.store.errors import Invalid

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384
MAX_KEY_TEXT = 16 * 1024
ACCEPTED = {
    "ssh-ed25519": "ed25519",
    "ecdsa-sha2-nistp256": "ecdsa",
    "ecdsa-sha2-nistp384": "ecdsa",
    "ecdsa-sha2-nistp521": "ecdsa",
    "ssh-rsa": "rsa",
}


@dataclass(frozen=True)
class ParsedKey:
    algorithm: str
    bits: int
    public_key: str  # "ALGORITHM BASE64", without the comment
    fingerprint: str  # "SHA256:..." as ssh-keygen -l prints it
    comment: str | None


def parse_public_key(text: str) -> ParsedKey:
    """One OpenSSH public key line; ed25519, ecdsa, or rsa of 2048 bits or more."""
    if not isinstance(text, str) or not text.strip():
        raise Invalid("the public key is empty")
    if len(text) > MAX_KEY_TEXT:
        raise Invalid("the public key is too long")
    if "PRIVATE KEY" in text:
        raise Invalid("this looks like a private key: give the .pub file instead")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        raise Invalid("give exactly one public key (one line of a .pub file)")
    line = lines[0].strip()
    try:
        key = asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError, TypeError) as error:
        raise Invalid(f"not a valid SSH public key ({error})") from None
    algorithm = key.algorithm.decode()
    if algorithm not in ACCEPTED:
        hint = " (DSA keys are insecure)" if algorithm == "ssh-dss" else ""
        raise Invalid(f"{algorithm} keys are not accepted{hint}: use ed25519, ecdsa or rsa")
    bits = _bits(key)
    if ACCEPTED[algorithm] == "rsa" and not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise Invalid(f"RSA keys must have {MIN_RSA_BITS} bits or more; this one has {bits}")
    exported = key.export_public_key("openssh").decode().split()
    return ParsedKey(
        algorithm=algorithm,
        bits=bits,
        public_key=" ".join(exported[:2]),
        fingerprint=key.get_fingerprint("sha256"),
        comment=key.get_comment(),
    )


def _bits(key: asyncssh.SSHKey) -> int:
    pyca = getattr(key, "pyca_key", None)
    size = getattr(pyca, "key_size", None)
    if isinstance(size, int):
        return size
    return 256  # ed25519

"""Certificates and keys in PEM, read with ``cryptography``: what a served certificate must
be (a chain whose leaf matches the key, is valid now and covers the name), and what the
platform shows of it (issuer, names, expiry). Keys never appear in an error."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from slipway.store.errors import Invalid

MAX_PEM = 64 * 1024  # bytes of a chain, or of a key
# Chain and key together, as the router takes them in one runtime-API command (HAProxy reads
# a command into one 16 KB buffer); a Let's Encrypt chain and key take about 4 KB.
MAX_SERVED = 15_000


@dataclass(frozen=True)
class CertificateInfo:
    names: list[str]  # the leaf's DNS names
    issuer: str
    not_before: datetime
    not_after: datetime
    self_signed: bool  # no client trusts it


def new_private_key() -> str:
    """An ECDSA P-256 key in PEM (PKCS#8), as Let's Encrypt's certificates use."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode()


def describe(chain_pem: str) -> CertificateInfo:
    return _describe(_chain(chain_pem)[0])


def _describe(leaf: x509.Certificate) -> CertificateInfo:
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in sans.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    common = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    issuer = str(common[0].value) if common else leaf.issuer.rfc4514_string()
    return CertificateInfo(
        names,
        issuer[:255],
        leaf.not_valid_before_utc,
        leaf.not_valid_after_utc,
        leaf.issuer == leaf.subject,
    )


def covers(names: list[str], hostname: str) -> bool:
    """Does a certificate for ``names`` serve ``hostname`` (a wildcard covers one label)?"""
    for name in names:
        if name == hostname:
            return True
        if name.startswith("*.") and hostname.partition(".")[2] == name[2:]:
            return True
    return False


def check_pair(chain_pem: str, key_pem: str, hostname: str) -> CertificateInfo:
    """The brought certificate and key, checked: each error is one line that says what to
    fix, never the key itself."""
    chain = _chain(chain_pem)
    key = _private_key(key_pem)
    served = len(chain_pem.encode()) + len(key_pem.encode())
    if served > MAX_SERVED:
        raise Invalid(
            f"the chain and key take {served} bytes, over the {MAX_SERVED} the router takes: "
            "leave the root certificate out of the chain"
        )
    if not _same_key(chain[0], key):
        raise Invalid("the private key does not match the certificate (the first one of the chain)")
    info = _describe(chain[0])
    moment = datetime.now(UTC)
    if info.not_after <= moment:
        raise Invalid(f"the certificate expired on {info.not_after:%Y-%m-%d %H:%M} UTC")
    if info.not_before > moment:
        raise Invalid(f"the certificate is not valid before {info.not_before:%Y-%m-%d %H:%M} UTC")
    if not covers(info.names, hostname):
        shown = ", ".join(info.names) or "no DNS name"
        raise Invalid(f"the certificate does not cover {hostname} (it covers {shown})")
    return info


PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----\n?", re.S)


def split(combined: str) -> tuple[str, str]:
    """A file holding a chain and its key (as HAProxy takes them): the chain, the key."""
    blocks = [(m.group(1), m.group(0)) for m in PEM_BLOCK.finditer(combined)]
    chain = "".join(text for kind, text in blocks if kind == "CERTIFICATE")
    keys = [text for kind, text in blocks if kind.endswith("PRIVATE KEY")]
    return chain, keys[0] if keys else ""


def _chain(chain_pem: str) -> list[x509.Certificate]:
    if not isinstance(chain_pem, str) or len(chain_pem) > MAX_PEM:
        raise Invalid(f"the certificate must be PEM text of at most {MAX_PEM // 1024} KB")
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        raise Invalid(
            "the certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----)"
        ) from None
    return chain


def _private_key(key_pem: str) -> object:
    if not isinstance(key_pem, str) or len(key_pem) > MAX_PEM:
        raise Invalid(f"the private key must be PEM text of at most {MAX_PEM // 1024} KB")
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        raise Invalid("the private key is encrypted: give it without a passphrase") from None
    except ValueError:
        raise Invalid("the private key is not a PEM private key (PKCS#8, PKCS#1 or SEC1)") from None
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise Invalid("the private key must be RSA, ECDSA or Ed25519")
    return key


def _same_key(leaf: x509.Certificate, key: object) -> bool:
    public = leaf.public_key()
    mine = key.public_key()  # type: ignore[attr-defined]
    encoding, form = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(public.public_bytes(encoding, form) == mine.public_bytes(encoding, form))

"""The router's TLS certificates, loaded and replaced through HAProxy's runtime API, never by
a reload: a certificate that changes serves new handshakes at once, and connections open on
the old one go on.

Each certificate is a PEM file (chain and key, mode 0600) under ``DATA_DIR/router/certs``
and a line of the crt-list the HTTPS ``bind`` reads at start, rewritten after every change,
so a restarted router serves the same ones. HAProxy 2.6 holds one certificate transaction at
a time (and may mix two up if a second one opens), so changes go one by one, under a lock
shared by every process of the host, and a failed one is aborted.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from slipway.certs.pem import covers, describe
from slipway.host.filelock import exclusive
from slipway.router.runtime import RouterError, RuntimeApi
from slipway.store.errors import Invalid


class Certificates:
    def __init__(self, directory: Path, crt_list: Path, runtime: RuntimeApi) -> None:
        self.directory = directory
        self.crt_list = crt_list
        self.runtime = runtime

    def path(self, hostname: str) -> Path:
        return self.directory / f"{hostname}.pem"

    @property
    def default(self) -> Path:
        """What a client without SNI, or with an unknown name, gets (self-signed until the
        operator sets one: `slipwayd admin certs set-default`)."""
        return self.directory / "default.pem"

    def served(self) -> dict[str, str]:
        """hostname → its PEM, as the files have them (the crt-list's certificates)."""
        found = {}
        for path in self._listed():
            found[path.name.removesuffix(".pem")] = path.read_text()
        return found

    def put(self, hostname: str, pem: str) -> None:
        """Serve ``pem`` (chain and key) for ``hostname``, replacing what it had."""
        path = self.path(hostname)
        with exclusive(self.directory / "certs.lock"):
            known = path in self._listed()
            if not known:
                self._expect(f"new ssl cert {path}", "New empty certificate store")
            self._load(path, pem)
            if not known:
                self._expect(f"add ssl crt-list {self.crt_list} {path}", "Success!")
            _write_private(path, pem)
            self._write_list(self._listed() | {path})

    def remove(self, hostname: str) -> None:
        path = self.path(hostname)
        with exclusive(self.directory / "certs.lock"):
            if path not in self._listed():
                return
            self._write_list(self._listed() - {path})
            self.runtime.command(f"del ssl crt-list {self.crt_list} {path}")
            self.runtime.command(f"del ssl cert {path}")
            path.unlink(missing_ok=True)

    def set_default(self, pem: str) -> None:
        """At once if the router runs; from its next start anyway."""
        with exclusive(self.directory / "certs.lock"):
            if self.runtime.answers():
                self._load(self.default, pem)
            _write_private(self.default, pem)

    def default_covers(self, host: str) -> bool:
        """Does the operator's default certificate serve ``host`` (the self-signed one
        never counts: no client trusts it)?"""
        try:
            info = describe(self.default.read_text())
        except (OSError, Invalid):
            return False
        return not info.self_signed and covers(info.names, host)

    def _load(self, path: Path, pem: str) -> None:
        """A transaction on ``path`` only, committed; aborted if anything fails."""
        try:
            self._expect(
                f"set ssl cert {path}", f"Transaction created for certificate {path}!", pem
            )
            self._expect(f"commit ssl cert {path}", "Success!")
        except RouterError:
            self.runtime.command(f"abort ssl cert {path}")
            raise

    def _expect(self, line: str, success: str, payload: str | None = None) -> None:
        answer = self.runtime.command(line, payload)
        if success not in answer:
            raise RouterError(f"{line.split(' <<')[0]}: {' '.join(answer.split())[:300]}")

    def _listed(self) -> set[Path]:
        try:
            lines = self.crt_list.read_text().splitlines()
        except FileNotFoundError:
            return set()
        return {
            Path(line.split()[0]) for line in lines if line.strip() and not line.startswith("#")
        }

    def _write_list(self, paths: set[Path]) -> None:
        text = "".join(f"{path}\n" for path in sorted(paths))
        temporary = self.crt_list.with_suffix(".tmp")
        temporary.write_text(text)
        os.replace(temporary, self.crt_list)


def prepare(directory: Path, crt_list: Path, apps_domain: str) -> None:
    """The files the HTTPS bind needs to start: the crt-list (empty at first) and a default
    certificate (self-signed for ``*.APPS_DOMAIN`` unless the operator has set one)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not crt_list.exists():
        crt_list.write_text("")
    default = directory / "default.pem"
    if not default.exists():
        _write_private(default, self_signed(apps_domain))


def self_signed(apps_domain: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Slipway default ({apps_domain})")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"*.{apps_domain}")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode() + key_pem.decode()


def _write_private(path: Path, text: str) -> None:
    """Whole or not at all, readable by this user only (it holds a key)."""
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.replace(temporary, path)

"""Apps' own domains in the router: each one reaches its app's host (``domains.map``), is
served with its certificate (slipway.router.certificates), and redirects HTTP to HTTPS when
its app asks (``https.map``); ACME's HTTP-01 answers are published in ``acme.map`` while an
order runs. Everything through the runtime API, and the map files rewritten, so a restarted
router has the same."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.host.filelock import exclusive
from slipway.router.certificates import Certificates
from slipway.router.haproxy import RouterFiles
from slipway.router.runtime import RouterError, RuntimeApi


@dataclass(frozen=True)
class RoutedDomain:
    hostname: str
    app_host: str
    force_https: bool
    certificate: str | None = None
    private_key: str | None = None

    @classmethod
    def from_api(cls, answer: dict[str, Any]) -> RoutedDomain:
        return cls(
            hostname=str(answer["hostname"]),
            app_host=str(answer["app_host"]),
            force_https=bool(answer["force_https"]),
            certificate=answer.get("certificate"),
            private_key=answer.get("private_key"),
        )

    @property
    def pem(self) -> str | None:
        if self.certificate is None or self.private_key is None:
            return None
        return self.certificate.strip() + "\n" + self.private_key.strip() + "\n"


class RouterDomains:
    def __init__(self, files: RouterFiles) -> None:
        self.files = files
        self.runtime = RuntimeApi(files.admin_socket)
        self.certificates = Certificates(files.certs_dir, files.crt_list, self.runtime)

    def apply(self, domains: list[RoutedDomain], forcing_https: list[str]) -> list[str]:
        """Make the router serve exactly these domains, and redirect to HTTPS the app hosts
        (APP.DOMAIN) ``forcing_https`` that the operator's default certificate covers; the
        problems it met, one line each (a certificate HAProxy refuses keeps the one it had)."""
        problems = []
        with exclusive(self.files.directory / "domains.lock"):
            served = self.certificates.served()
            for domain in domains:
                pem = domain.pem
                if pem is not None and served.get(domain.hostname) != pem:
                    try:
                        self.certificates.put(domain.hostname, pem)
                    except (RouterError, OSError) as error:
                        problems.append(f"{domain.hostname}: {error}")
            wanted = {d.hostname for d in domains if d.pem is not None}
            for hostname in set(served) - wanted:
                self.certificates.remove(hostname)
            self._sync_map(self.files.domains_map, {d.hostname: d.app_host for d in domains})
            https = {d.hostname: "1" for d in domains if d.force_https and d.pem is not None}
            covered = [h for h in forcing_https if self.certificates.default_covers(h)]
            https |= dict.fromkeys(covered, "1")
            self._sync_map(self.files.https_map, https)
        return problems

    def publish_challenge(self, token: str, key_authorization: str) -> None:
        self.runtime.put_map(self.files.acme_map, token, key_authorization)

    def withdraw_challenge(self, token: str) -> None:
        self.runtime.del_map(self.files.acme_map, token)

    def _sync_map(self, path: Path, wanted: dict[str, str]) -> None:
        current = self.runtime.map_entries(path)
        for key in set(current) - set(wanted):
            self.runtime.del_map(path, key)
        for key, value in wanted.items():
            if current.get(key) != value:
                self.runtime.put_map(path, key, value)
        temporary = path.with_suffix(".tmp")
        temporary.write_text("".join(f"{key} {value}\n" for key, value in sorted(wanted.items())))
        os.replace(temporary, path)

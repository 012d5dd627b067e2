"""What repo hosts (the pre-receive hook, the build worker) ask the API, over /internal.

They hold no user data: the API decides what a push deploys, hands out the app's config for
its build, and records how the build ended. A few calls per push: the standard library's
HTTP client does, and the hook, which every push waits for, starts 0.1 s sooner than with
httpx.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from slipway.config import Settings


class PlatformError(Exception):
    """The API refused, or could not be reached; the message says which, ``status`` the
    HTTP status of a refusal (None: unreachable)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PlatformApi:
    def __init__(self, url: str, secret: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.secret = secret
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> PlatformApi:
        return cls(settings.effective_api_url, settings.effective_internal_secret())

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - our own API's http(s) URL
            self.url + path,
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.secret}",
                "Content-Type": "application/json",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                content = response.read()
                answer: dict[str, Any] = json.loads(content) if content else {}
                return answer
        except urllib.error.HTTPError as error:
            try:
                message = json.load(error)["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {error.code}"
            raise PlatformError(message, error.code) from None
        except (OSError, ValueError) as error:
            raise PlatformError(f"the platform's API is unreachable ({error})") from None

    def open_deployment(
        self, repository: str, updates: list[dict[str, str]], pusher: str | None
    ) -> dict[str, Any]:
        """What the push deploys: ``deployment_id`` (None: nothing), ``deploy_branch``,
        ``skipped`` refs and the ``app``'s name."""
        return self._call(
            f"/internal/apps/{repository}/deployments", {"updates": updates, "pusher": pusher}
        )

    def start_build(self, deployment_id: int) -> dict[str, Any]:
        """The app's name, uid, commit, pusher and config vars; the deployment is building."""
        return self._call(f"/internal/deployments/{deployment_id}/build", {})

    def release(self, app_uid: str, version: int) -> dict[str, Any]:
        """What a runner runs: the release's slug, process types, config and formation, and
        whether a newer release has superseded it."""
        return self._call(f"/internal/apps/{app_uid}/releases/{version}", {})

    def finish(
        self,
        deployment_id: int,
        status: str,
        *,
        error: str | None = None,
        log: str | None = None,
        build: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record the end; on success the answer has ``release_version`` and the
        ``keep_slugs`` of the app (the others may go)."""
        return self._call(
            f"/internal/deployments/{deployment_id}/finish",
            {"status": status, "error": error, "log": log, "build": build},
        )

    def release_started(
        self, app_uid: str, version: int, status: str, error: str | None = None
    ) -> None:
        """How a runner's start of the release went (its deployment ends so)."""
        self._call(
            f"/internal/apps/{app_uid}/releases/{version}/started",
            {"status": status, "error": error},
        )

    def current_releases(self, runner: str) -> list[dict[str, Any]]:
        """The newest release (``app_uid``, ``version``) of each app placed on ``runner``."""
        return list(self._call("/internal/releases/current", {"runner": runner})["releases"])

    # -- the router's host: domains and their certificates (slipway.certs) -----------------

    def routed_domains(self) -> dict[str, Any]:
        """Every domain (its app's host, force-https, its certificate and key if any), and
        the hosts of the apps that force HTTPS."""
        return self._call("/internal/router/domains", {})

    def due_domains(self) -> list[str]:
        return list(self._call("/internal/domains/due", {})["hostnames"])

    def start_order(self, hostname: str) -> dict[str, Any]:
        """The domain is issuing: its order in flight, and the ACME account."""
        return self._call(f"/internal/domains/{quote(hostname)}/order", {})

    def order_saved(self, hostname: str, order_url: str, order_key: str) -> None:
        body = {"order_url": order_url, "order_key": order_key}
        self._call(f"/internal/domains/{quote(hostname)}/order-saved", body)

    def certificate_issued(self, hostname: str, certificate: str, private_key: str) -> None:
        body = {"certificate": certificate, "private_key": private_key}
        self._call(f"/internal/domains/{quote(hostname)}/issued", body)

    def order_failed(self, hostname: str, reason: str, dns: bool = False) -> None:
        self._call(f"/internal/domains/{quote(hostname)}/failed", {"reason": reason, "dns": dns})

    def save_acme_account(self, directory: str, key: str, registration: str | None) -> None:
        body = {"directory": directory, "key": key, "registration": registration}
        self._call("/internal/acme/account", body)

    def download_slug(self, app_uid: str, slug_id: str, path: Path) -> None:
        """Fetch a slug from the repo host (for a runner on another host)."""
        request = urllib.request.Request(  # noqa: S310 - our own API's http(s) URL
            f"{self.url}/internal/apps/{app_uid}/slugs/{slug_id}",
            headers={"Authorization": f"Bearer {self.secret}"},
            method="POST",
        )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        try:
            with (
                urllib.request.urlopen(request, timeout=self.timeout) as response,  # noqa: S310
                open(partial, "wb") as file,
            ):
                shutil.copyfileobj(response, file, 1 << 20)
            os.replace(partial, path)
        except (OSError, urllib.error.HTTPError) as error:
            partial.unlink(missing_ok=True)
            raise PlatformError(f"cannot fetch the slug {slug_id}: {error}") from None

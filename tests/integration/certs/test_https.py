"""HTTPS without ACME: a certificate a user brings, the operator's default certificate for
every APP.DOMAIN, force-https, the headers apps see, and all of it across a restart."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.builds_support import SLIPWAY, SLIPWAYD, Platform, web_app
from tests.services import wait_until
from tests.tls_support import TestCa

pytestmark = pytest.mark.timeout(300)

NAME = "www.shop.test"
DOMAIN = "apps.test"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    # Two labels: TLS clients match no wildcard right under a top-level name (*.localhost).
    platform = Platform(tmp_path_factory.mktemp("https"), {"SLIPWAY_APPS_DOMAIN": DOMAIN})
    platform.start()
    try:
        app = platform.new_app("shop", None, web_app("v1"))
        assert platform.push(app).returncode == 0
        platform.answers("shop", "v1 pid=")
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def ca() -> TestCa:
    return TestCa()


def https(
    platform: Platform, ca: TestCa, host: str, path: str = "/"
) -> subprocess.CompletedProcess[str]:
    """curl, trusting only ``ca``, to ``host`` resolved to the router."""
    bundle = platform.root / "ca.pem"
    return subprocess.run(
        [
            *("curl", "--silent", "--show-error", "--cacert", str(bundle)),
            *("--resolve", f"{host}:{platform.https_port}:127.0.0.1"),
            f"https://{host}:{platform.https_port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def write_pair(directory: Path, chain: str, key: str) -> tuple[str, str]:
    (directory / "cert.pem").write_text(chain)
    (directory / "key.pem").write_text(key)
    return str(directory / "cert.pem"), str(directory / "key.pem")


def test_a_brought_certificate_serves_its_domain_with_the_forwarded_headers(
    platform: Platform, ca: TestCa, tmp_path: Path
) -> None:
    (platform.root / "ca.pem").write_text(ca.pem)
    cert, key = write_pair(tmp_path, *ca.issue(NAME))
    added = platform.run(
        SLIPWAY, "domains", "add", NAME, "--cert", cert, "--key", key, "-a", "shop"
    )
    assert "active" in added
    wait_until(lambda: https(platform, ca, NAME).stdout.startswith("hello v1"), 30, "HTTPS")
    assert https(platform, ca, NAME, "/?header=X-Forwarded-Proto").stdout == "https"
    assert https(platform, ca, NAME, "/?header=X-Forwarded-For").stdout == "127.0.0.1"
    plain = httpx.get(
        f"http://127.0.0.1:{platform.router_port}/?header=X-Forwarded-Proto",
        headers={"Host": NAME, "X-Forwarded-Proto": "https"},  # a client's claim is replaced
        timeout=10,
    )
    assert plain.text == "http"


def test_force_https_redirects_plain_requests_of_certified_names(
    platform: Platform, ca: TestCa
) -> None:
    platform.run(SLIPWAY, "domains", "force-https", "on", "-a", "shop")

    def redirected() -> httpx.Response:
        return httpx.get(
            f"http://127.0.0.1:{platform.router_port}/a/b?c=1",
            headers={"Host": f"{NAME}:{platform.router_port}"},
            timeout=10,
        )

    wait_until(lambda: redirected().status_code == 308, 30, "the redirect")
    assert redirected().headers["location"] == f"https://{NAME}:{platform.https_port}/a/b?c=1"
    assert https(platform, ca, NAME).stdout.startswith("hello v1")  # HTTPS is not redirected
    # shop.apps.test has no certificate anyone trusts (the router's own is self-signed).
    assert platform.visit("shop").status_code == 200
    platform.run(SLIPWAY, "domains", "force-https", "off", "-a", "shop")
    wait_until(lambda: redirected().status_code == 200, 30, "no redirect")


def test_the_operators_default_certificate_gives_every_app_https(
    platform: Platform, ca: TestCa, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    expired = "".join(
        ca.issue(
            f"*.{DOMAIN}", not_before=now - timedelta(days=9), not_after=now - timedelta(days=1)
        )
    )
    (tmp_path / "expired.pem").write_text(expired)
    (tmp_path / "narrow.pem").write_text("".join(ca.issue(f"shop.{DOMAIN}")))
    for bad, words in (
        ("expired.pem", "expired on"),
        ("narrow.pem", f"does not cover app.{DOMAIN}"),
    ):
        result = subprocess.run(
            [*SLIPWAYD, "admin", "certs", "set-default", str(tmp_path / bad)],
            env=platform.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 1 and words in result.stderr, result.stderr
    assert https(platform, ca, f"shop.{DOMAIN}").returncode != 0  # still the self-signed one
    (tmp_path / "wildcard.pem").write_text("".join(ca.issue(f"*.{DOMAIN}")))
    platform.run(SLIPWAY, "domains", "force-https", "on", "-a", "shop")
    assert platform.visit("shop").status_code == 200  # not yet: nobody trusts its certificate
    platform.run(*SLIPWAYD, "admin", "certs", "set-default", str(tmp_path / "wildcard.pem"))
    assert https(platform, ca, f"shop.{DOMAIN}").stdout.startswith("hello v1")
    wait_until(lambda: platform.visit("shop").status_code == 308, 30, "APP.DOMAIN's redirect")
    platform.run(SLIPWAY, "domains", "force-https", "off", "-a", "shop")


def test_certificates_survive_a_restart(platform: Platform, ca: TestCa) -> None:
    platform.restart()
    wait_until(lambda: https(platform, ca, NAME).stdout.startswith("hello v1"), 60, "HTTPS")
    assert https(platform, ca, f"shop.{DOMAIN}").stdout.startswith("hello v1")
    key_files = list((platform.data / "router" / "certs").glob("*.pem"))
    assert {p.name for p in key_files} == {"default.pem", f"{NAME}.pem"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in key_files)

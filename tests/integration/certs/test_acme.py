"""Certificates from a real ACME server (Pebble): issued through HTTP-01 answered by the
router, served by SNI, renewed under load with no failed request, and a refused renewal that
leaves the working certificate in place."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from slipway.host.ports import free_port
from tests.acme_support import Pebble
from tests.builds_support import SLIPWAY, Platform, web_app
from tests.services import wait_until

pytestmark = [
    pytest.mark.skipif(shutil.which("pebble") is None, reason="pebble is missing"),
    pytest.mark.timeout(300),
]

NAME = "www.example.test"
VALIDITY = 120  # seconds a certificate from Pebble lasts here
RENEW_BEFORE = 100  # seconds: a certificate is renewed 20 s after it is issued


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, Pebble]]:
    router_port = free_port()
    with Pebble(router_port, VALIDITY) as pebble:
        settings = {
            "SLIPWAY_ACME_DIRECTORY": pebble.directory_url,
            "SLIPWAY_ACME_EMAIL": "ops@example.test",
            "SLIPWAY_ACME_CA_BUNDLE": str(pebble.ca_bundle),
            "SLIPWAY_ACME_DNS_CHECK": "false",  # www.example.test resolves for Pebble only
            "SLIPWAY_ACME_CHECK_EVERY": "1",
            "SLIPWAY_ACME_RETRY_SECONDS": "2",
            "SLIPWAY_ACME_RENEW_DAYS": str(RENEW_BEFORE / 86400),
        }
        platform = Platform(tmp_path_factory.mktemp("acme"), settings, router_port)
        platform.start()
        try:
            app = platform.new_app("shop", None, web_app("v1"))
            assert platform.push(app).returncode == 0
            platform.answers("shop", "v1 pid=")
            (platform.root / "root.pem").write_text(pebble.root())
            yield platform, pebble
        finally:
            platform.stop()


def domain(platform: Platform) -> dict[str, Any]:
    found = json.loads(platform.run(SLIPWAY, "domains", "--json", "-a", "shop"))
    return next(d for d in found if d["hostname"] == NAME)


def served_certificate(platform: Platform) -> dict[str, Any]:
    """The certificate the router shows for NAME, checked against Pebble's root."""
    context = ssl.create_default_context(cafile=str(platform.root / "root.pem"))
    with (
        socket.create_connection(("127.0.0.1", platform.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=NAME) as tls,
    ):
        found = tls.getpeercert()
    assert found is not None
    return dict(found)


def test_a_domain_gets_a_certificate_through_http01_and_serves_the_app(
    acme: tuple[Platform, Pebble],
) -> None:
    platform, _ = acme
    platform.run(SLIPWAY, "domains", "add", NAME, "-a", "shop")
    wait_until(lambda: domain(platform)["state"] == "active", 60, "the certificate")
    answer = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--resolve",
            f"{NAME}:{platform.https_port}:127.0.0.1",
            "--cacert",
            str(platform.root / "root.pem"),
            f"https://{NAME}:{platform.https_port}/",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith("hello v1 pid=")
    certificate = served_certificate(platform)
    assert ("DNS", NAME) in certificate["subjectAltName"]
    issuer = dict(item[0] for item in certificate["issuer"])
    assert issuer["commonName"].startswith("Pebble Intermediate CA")
    assert domain(platform)["issuer"] == issuer["commonName"]
    # Over plain HTTP the domain reaches the app too, and says which scheme it came by.
    plain = httpx.get(
        f"http://127.0.0.1:{platform.router_port}/", headers={"Host": NAME}, timeout=10
    )
    assert plain.text.startswith("hello v1 pid=")


class HttpsLoad:
    """Clients asking over HTTPS until stopped: half on kept-alive connections, half with a
    new handshake each time; every failure is counted by its kind."""

    def __init__(self, platform: Platform, clients: int = 4) -> None:
        self.url = f"https://{NAME}:{platform.https_port}/"
        self.resolve = {NAME: "127.0.0.1"}
        self.context = ssl.create_default_context(cafile=str(platform.root / "root.pem"))
        self.port = platform.https_port
        self.ok = 0
        self.failures: Counter[str] = Counter()
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(index % 2 == 0,)) for index in range(clients)
        ]

    def _client(self, keep_alive: bool) -> httpx.Client:
        transport = httpx.HTTPTransport(verify=self.context, retries=0)
        limits = httpx.Limits(max_keepalive_connections=1 if keep_alive else 0)
        return httpx.Client(transport=transport, limits=limits, timeout=10)

    def _run(self, keep_alive: bool) -> None:
        # Resolved by hand: the URL names NAME (for SNI and Host), the socket goes to 127.0.0.1.
        with self._client(keep_alive) as client:
            while not self.stopping.is_set():
                try:
                    response = client.get(
                        f"https://127.0.0.1:{self.port}/",
                        headers={"Host": NAME},
                        extensions={"sni_hostname": NAME},
                    )
                    if response.status_code == 200:
                        self.ok += 1
                    else:
                        self.failures[f"HTTP {response.status_code}"] += 1
                except httpx.HTTPError as error:
                    self.failures[type(error).__name__ + ": " + str(error)[:80]] += 1

    def __enter__(self) -> HttpsLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)


def test_renewal_swaps_the_certificate_under_load_with_no_failed_request(
    acme: tuple[Platform, Pebble],
) -> None:
    platform, _ = acme
    wait_until(lambda: domain(platform)["state"] == "active", 60, "the first certificate")
    first = served_certificate(platform)["serialNumber"]
    with HttpsLoad(platform) as load:
        wait_until(lambda: served_certificate(platform)["serialNumber"] != first, 60, "a renewal")
        time.sleep(1.0)  # requests on the new certificate too
    assert load.failures == Counter(), load.failures
    assert load.ok > 50
    assert domain(platform)["state"] == "active"


def test_a_refused_renewal_keeps_the_old_certificate_and_says_why(
    acme: tuple[Platform, Pebble],
) -> None:
    platform, pebble = acme
    wait_until(lambda: domain(platform)["state"] == "active", 60, "a certificate")
    pebble.point_names_at("127.0.0.2")  # the name moved away: validation cannot reach it
    try:
        wait_until(lambda: domain(platform)["state"] == "failed", 60, "a refused renewal")
        failed = domain(platform)
        assert failed["reason"] and "127.0.0.2" in failed["reason"]
        assert failed["retry_at"] is not None
        served = served_certificate(platform)  # still the working one, still valid
        assert ("DNS", NAME) in served["subjectAltName"]
        listed = platform.run(SLIPWAY, "domains", "-a", "shop")  # failed, or retrying already
        assert "127.0.0.2" in listed
    finally:
        pebble.point_names_at("127.0.0.1")
    wait_until(lambda: domain(platform)["state"] == "active", 90, "a renewal after the retry")


def test_a_removed_domain_is_no_longer_served(acme: tuple[Platform, Pebble]) -> None:
    platform, _ = acme
    platform.run(SLIPWAY, "domains", "remove", NAME, "-a", "shop")
    wait_until(
        lambda: (
            httpx.get(
                f"http://127.0.0.1:{platform.router_port}/", headers={"Host": NAME}, timeout=10
            ).status_code
            == 404
        ),
        30,
        "the domain to go",
    )

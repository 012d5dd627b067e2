"""Domains through the public API: who may attach what, every refusal one line that changes
nothing, and keys that never come back out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from slipway.store import accounts, apps
from tests.control_support import ApiServer
from tests.tls_support import TestCa


@pytest.fixture
def clients(api: ApiServer) -> dict[str, httpx.Client]:
    """alice owns shop, bob collaborates on it, carol owns blog."""
    with api.database.session() as session:
        alice, bob, carol = (accounts.create_user(session, n) for n in ("alice", "bob", "carol"))
        apps.add_collaborator(session, apps.create_app(session, alice, "shop"), "bob")
        apps.create_app(session, carol, "blog")
        tokens = {u.name: accounts.create_token(session, u).token for u in (alice, bob, carol)}
    return {name: api.client(token) for name, token in tokens.items()}


def domains_of(client: httpx.Client, app: str) -> list[dict[str, object]]:
    response = client.get(f"/v1/apps/{app}/domains")
    assert response.status_code == 200, response.text
    return list(response.json())


def test_a_domain_without_acme_is_served_over_http_only(clients: dict[str, httpx.Client]) -> None:
    added = clients["bob"].post("/v1/apps/shop/domains", json={"hostname": "WWW.Shop.Test."})
    assert added.status_code == 201, added.text
    assert added.json()["hostname"] == "www.shop.test"  # lowercased, no final dot
    assert added.json()["state"] == "http-only"
    assert added.json()["dns_target"] == "shop.localhost"
    assert [d["hostname"] for d in domains_of(clients["alice"], "shop")] == ["www.shop.test"]
    assert clients["carol"].get("/v1/apps/shop/domains").status_code == 404
    assert clients["carol"].delete("/v1/apps/shop/domains/www.shop.test").status_code == 404
    assert clients["alice"].delete("/v1/apps/shop/domains/www.shop.test").status_code == 204
    assert domains_of(clients["alice"], "shop") == []


def test_with_acme_a_new_domain_waits_for_its_dns(
    api: ApiServer, clients: dict[str, httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.settings, "acme_directory", "https://acme.test/directory")
    added = clients["alice"].post("/v1/apps/shop/domains", json={"hostname": "www.shop.test"})
    assert added.json()["state"] == "pending-dns"
    assert added.json()["source"] == "acme"


@pytest.mark.parametrize(
    ("hostname", "words"),
    [
        ("shop", "invalid domain"),
        ("-bad.example.com", "invalid domain"),
        ("under_score.example.com", "invalid domain"),
        ("127.0.0.1", "invalid domain"),
        ("a" * 64 + ".example.com", "invalid domain"),
        ("*.example.com", "wildcard domains are not allowed"),
        ("shop.localhost", "under the platform's domain"),
        ("localhost.", "invalid domain"),
        ("exa mple.com", "invalid domain"),
    ],
)
def test_bad_names_are_refused_in_one_line(
    clients: dict[str, httpx.Client], hostname: str, words: str
) -> None:
    refused = clients["alice"].post("/v1/apps/shop/domains", json={"hostname": hostname})
    assert refused.status_code == 422, refused.text
    message = refused.json()["message"]
    assert words in message and "\n" not in message
    assert domains_of(clients["alice"], "shop") == []


def test_a_taken_domain_gets_the_same_answer_whoever_has_it(
    clients: dict[str, httpx.Client],
) -> None:
    assert (
        clients["carol"].post("/v1/apps/blog/domains", json={"hostname": "www.x.test"}).status_code
        == 201
    )
    assert (
        clients["alice"].post("/v1/apps/shop/domains", json={"hostname": "api.x.test"}).status_code
        == 201
    )
    theirs = clients["alice"].post("/v1/apps/shop/domains", json={"hostname": "www.x.test"})
    mine = clients["alice"].post("/v1/apps/shop/domains", json={"hostname": "api.x.test"})
    assert theirs.status_code == mine.status_code == 409
    assert theirs.json()["message"].replace("www", "api") == mine.json()["message"]
    assert [d["hostname"] for d in domains_of(clients["carol"], "blog")] == ["www.x.test"]


def test_a_brought_certificate_serves_at_once_and_its_key_never_comes_back(
    clients: dict[str, httpx.Client],
) -> None:
    ca = TestCa()
    chain, key = ca.issue("www.shop.test")
    body = {"hostname": "www.shop.test", "certificate": chain, "private_key": key}
    added = clients["alice"].post("/v1/apps/shop/domains", json=body)
    assert added.status_code == 201, added.text
    assert added.json()["state"] == "active"
    assert added.json()["source"] == "custom"
    assert added.json()["issuer"] == ca.name
    listed = clients["bob"].get("/v1/apps/shop/domains")
    for answer in (added, listed):
        assert "PRIVATE KEY" not in answer.text and "BEGIN CERTIFICATE" not in answer.text


def test_bad_certificates_are_refused_in_one_line(clients: dict[str, httpx.Client]) -> None:
    ca = TestCa()
    now = datetime.now(UTC)
    good, key = ca.issue("www.shop.test")
    _, other_key = ca.issue("www.shop.test")
    expired, expired_key = ca.issue(
        "www.shop.test", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    elsewhere, elsewhere_key = ca.issue("www.other.test")
    wildcard, wildcard_key = ca.issue("*.shop.test")
    cases = [
        (good, other_key, "does not match"),
        (expired, expired_key, "expired on"),
        (elsewhere, elsewhere_key, "does not cover www.shop.test"),
        ("not a certificate", key, "not a PEM certificate"),
        (good, "not a key", "not a PEM private key"),
        (good, None, "needs its private key"),
        (good + ca.pem * 30, key, "leave the root certificate out"),
    ]
    for certificate, private_key, words in cases:
        body = {"hostname": "www.shop.test", "certificate": certificate, "private_key": private_key}
        refused = clients["alice"].post("/v1/apps/shop/domains", json=body)
        assert refused.status_code == 422, (words, refused.text)
        assert words in refused.json()["message"] and "\n" not in refused.json()["message"]
        assert "PRIVATE KEY" not in refused.text
    assert domains_of(clients["alice"], "shop") == []
    covered = {"hostname": "www.shop.test", "certificate": wildcard, "private_key": wildcard_key}
    assert clients["alice"].post("/v1/apps/shop/domains", json=covered).status_code == 201


def test_force_https_is_the_apps_writers_choice(clients: dict[str, httpx.Client]) -> None:
    answer = clients["bob"].put("/v1/apps/shop/force-https", json={"enabled": True})
    assert answer.json() == {"force_https": True}
    assert (
        clients["carol"].put("/v1/apps/shop/force-https", json={"enabled": False}).status_code
        == 404
    )
    assert (
        clients["alice"].put("/v1/apps/shop/force-https", json={"enabled": "yes"}).status_code
        == 422
    )


def test_the_router_reads_domains_with_their_keys_only_with_the_secret(
    api: ApiServer, clients: dict[str, httpx.Client]
) -> None:
    chain, key = TestCa().issue("www.shop.test")
    body = {"hostname": "www.shop.test", "certificate": chain, "private_key": key}
    assert clients["alice"].post("/v1/apps/shop/domains", json=body).status_code == 201
    assert clients["alice"].post("/internal/router/domains", json={}).status_code == 401
    assert (
        clients["alice"].put("/v1/apps/shop/force-https", json={"enabled": True}).status_code == 200
    )
    answer = api.internal().post("/internal/router/domains", json={}).json()
    assert answer["force_https_hosts"] == ["shop.localhost"]
    routed = answer["domains"]
    assert routed == [
        {
            "hostname": "www.shop.test",
            "app_host": "shop.localhost",
            "force_https": True,
            "certificate": chain,
            "private_key": key,
        }
    ]

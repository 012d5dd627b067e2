"""The HTTP API over real HTTP: who may call what, errors, limits, pagination, internals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from slipway.store import accounts, apps
from slipway.store.models import App
from tests.control_support import INTERNAL_SECRET, ApiServer
from tests.keys import fresh_public, generate, proven_key

ROLES = ["owner", "collaborator", "stranger", "no token", "bad token", "revoked token"]


@dataclass
class World:
    """alice owns `shop`, bob collaborates on it, carol is a stranger to it."""

    api: ApiServer
    tokens: dict[str, str | None]
    fingerprint: str

    def client(self, role: str) -> httpx.Client:
        return self.api.client(self.tokens[role])


@pytest.fixture
def world(api: ApiServer) -> World:
    with api.database.session() as session:
        alice = accounts.create_user(session, "alice")
        bob = accounts.create_user(session, "bob")
        carol = accounts.create_user(session, "carol")
        accounts.create_user(session, "dave")
        shop = apps.create_app(session, alice, "shop")
        apps.add_collaborator(session, shop, "bob")
        revoked = accounts.create_token(session, alice, "old")
        accounts.revoke_token(session, alice, revoked.record.id)
        key = accounts.add_key(session, alice, fresh_public(), "laptop")
        tokens: dict[str, str | None] = {
            "owner": accounts.create_token(session, alice).token,
            "collaborator": accounts.create_token(session, bob).token,
            "stranger": accounts.create_token(session, carol).token,
            "no token": None,
            "bad token": "slp_" + "x" * 43,
            "revoked token": revoked.token,
        }
    return World(api, tokens, key.fingerprint)


UNAUTHENTICATED = {"no token": 401, "bad token": 401, "revoked token": 401}
ANY_USER = {"owner": 200, "collaborator": 200, "stranger": 200, **UNAUTHENTICATED}


def app_rule(owner: int, collaborator: int) -> dict[str, int]:
    return {"owner": owner, "collaborator": collaborator, "stranger": 404, **UNAUTHENTICATED}


# (method, path, body, expected status per role)
ENDPOINTS: list[tuple[str, str, Any, dict[str, int]]] = [
    ("GET", "/v1/user", None, ANY_USER),
    ("GET", "/v1/tokens", None, ANY_USER),
    (
        "POST",
        "/v1/tokens",
        {"name": "laptop"},
        {**ANY_USER, "owner": 201, "collaborator": 201, "stranger": 201},
    ),
    (
        "DELETE",
        "/v1/tokens/999999",
        None,
        {**ANY_USER, "owner": 404, "collaborator": 404, "stranger": 404},
    ),
    ("GET", "/v1/keys", None, ANY_USER),
    ("POST", "/v1/keys/challenge", None, ANY_USER),
    (
        "POST",
        "/v1/keys",
        "fresh key",
        {**ANY_USER, "owner": 201, "collaborator": 201, "stranger": 201},
    ),
    (
        "DELETE",
        "/v1/keys/laptop",
        None,
        {**ANY_USER, "owner": 204, "collaborator": 404, "stranger": 404},
    ),
    ("GET", "/v1/apps", None, ANY_USER),
    (
        "POST",
        "/v1/apps",
        {"name": "new-app"},
        {**ANY_USER, "owner": 201, "collaborator": 201, "stranger": 201},
    ),
    ("GET", "/v1/apps/shop", None, app_rule(200, 200)),
    ("DELETE", "/v1/apps/shop", None, app_rule(204, 403)),
    ("GET", "/v1/apps/shop/collaborators", None, app_rule(200, 200)),
    ("POST", "/v1/apps/shop/collaborators", {"user": "dave"}, app_rule(201, 403)),
    ("DELETE", "/v1/apps/shop/collaborators/bob", None, app_rule(204, 403)),
    ("GET", "/v1/apps/shop/env", None, app_rule(200, 200)),
    ("PATCH", "/v1/apps/shop/env", {"env": {"A": "1"}}, app_rule(200, 200)),
    ("GET", "/v1/apps/shop/domains", None, app_rule(200, 200)),
    ("POST", "/v1/apps/shop/domains", {"hostname": "www.shop.test"}, app_rule(201, 201)),
    ("DELETE", "/v1/apps/shop/domains/www.nowhere.test", None, app_rule(404, 404)),
    ("PUT", "/v1/apps/shop/force-https", {"enabled": True}, app_rule(200, 200)),
    ("POST", "/internal/router/domains", {}, {role: 401 for role in ROLES}),
    ("POST", "/internal/domains/www.shop.test/issued", {}, {role: 401 for role in ROLES}),
    ("GET", "/internal/keys?fingerprint=SHA256:x", None, {role: 401 for role in ROLES}),
    (
        "POST",
        "/internal/authorize",
        {"user": "alice", "app": "shop", "action": "push"},
        {role: 401 for role in ROLES},
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
def test_authorization_matrix(
    world: World, role: str, method: str, path: str, body: Any, expected: dict[str, int]
) -> None:
    if body == "fresh key":  # proven by the caller, or by alice for callers refused anyway
        prover = role if role in ("owner", "collaborator", "stranger") else "owner"
        body = proven_key(world.client(prover), generate("ed25519"))
    response = world.client(role).request(method, path, json=body)
    assert response.status_code == expected[role], response.text
    if response.status_code >= 400:
        error = response.json()
        assert set(error) >= {"code", "message"} and "Traceback" not in response.text
    if response.status_code == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_internal_api_takes_only_the_shared_secret(world: World) -> None:
    internal = world.api.internal()
    owner = internal.get("/internal/keys", params={"fingerprint": world.fingerprint})
    assert owner.status_code == 200
    assert owner.json() == {"user": "alice", "key": "laptop", "fingerprint": world.fingerprint}
    assert internal.get("/internal/keys", params={"fingerprint": "SHA256:nope"}).status_code == 404
    for secret in ("", "wrong", INTERNAL_SECRET + "x", world.tokens["owner"]):
        client = world.api.client(secret)
        assert (
            client.get("/internal/keys", params={"fingerprint": world.fingerprint}).status_code
            == 401
        )


def test_authorize_says_where_the_repository_is_and_leaks_nothing(world: World) -> None:
    internal = world.api.internal()

    def ask(user: str, app: str, action: str) -> dict[str, Any]:
        response = internal.post(
            "/internal/authorize", json={"user": user, "app": app, "action": action}
        )
        assert response.status_code == 200
        return dict(response.json())

    allowed = ask("bob", "shop", "push")
    assert allowed["allowed"] is True
    assert allowed["repository"]["host"] == "local"
    with world.api.database.session() as session:
        uid = session.scalar(select(App.uid).where(App.name == "shop"))
    assert uid is not None and len(uid) == 32
    assert allowed["repository"]["id"] == uid  # what names its files, not "shop"
    for action in ("push", "fetch", "tunnel"):
        assert ask("alice", "shop", action)["allowed"] is True
    forbidden = ask("carol", "shop", "push")
    missing = ask("carol", "no-such-app", "push")
    ghost = ask("nobody", "shop", "fetch")
    assert forbidden == missing == ghost == {"allowed": False, "repository": None, "database": None}
    bad = internal.post(
        "/internal/authorize", json={"user": "alice", "app": "shop", "action": "destroy"}
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"


def test_creating_an_app_answers_with_its_git_remote(world: World) -> None:
    response = world.client("owner").post("/v1/apps", json={"name": "blog"})
    assert response.status_code == 201
    assert response.json()["git_remote"] == "ssh://git@slipway.test:2222/blog.git"
    assert response.json()["owner"] == "alice" and response.json()["role"] == "owner"


def test_the_same_key_for_a_second_user_is_a_conflict(world: World) -> None:
    owner, stranger = world.client("owner"), world.client("stranger")
    private = generate("ed25519")
    assert owner.post("/v1/keys", json=proven_key(owner, private)).status_code == 201
    # Even when the second user holds the key too (one person, two accounts).
    again = stranger.post("/v1/keys", json=proven_key(stranger, private))
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"
    assert "already registered by another user" in again.json()["message"]


def test_lists_are_paginated(world: World) -> None:
    owner = world.client("owner")
    for i in range(7):
        assert owner.post("/v1/apps", json={"name": f"app-{i}"}).status_code == 201
    first = owner.get("/v1/apps", params={"per_page": 3}).json()
    assert (first["total"], first["page"], first["per_page"]) == (8, 1, 3)
    names = [
        app["name"]
        for page in (1, 2, 3)
        for app in owner.get("/v1/apps", params={"per_page": 3, "page": page}).json()["items"]
    ]
    assert names == sorted(["shop"] + [f"app-{i}" for i in range(7)])
    for bad in ({"per_page": 0}, {"per_page": 101}, {"page": 0}, {"page": "x"}):
        response = owner.get("/v1/apps", params=bad)
        assert response.status_code == 422 and response.json()["code"] == "invalid_request"
    assert world.client("stranger").get("/v1/apps").json()["total"] == 0


@pytest.mark.parametrize(
    ("content", "headers", "code"),
    [
        ("{not json", {"content-type": "application/json"}, "invalid_request"),
        ('{"name": "x", "extra": 1}', {"content-type": "application/json"}, "invalid_request"),
        ('{"name": 42}', {"content-type": "application/json"}, "invalid_request"),
        ('{"name": "Bad.Name"}', {"content-type": "application/json"}, "invalid"),
        ("[]", {"content-type": "application/json"}, "invalid_request"),
    ],
)
def test_bad_bodies_get_json_errors(
    world: World, content: str, headers: dict[str, str], code: str
) -> None:
    response = world.client("owner").post("/v1/apps", content=content, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == code
    assert world.client("owner").get("/v1/apps").json()["total"] == 1


def test_bodies_over_the_limit_are_refused(world: World) -> None:
    big = {"env": {"A": "x" * (1024 * 1024)}}
    response = world.client("owner").patch("/v1/apps/shop/env", json=big)
    assert response.status_code == 413 and response.json()["code"] == "too_large"

    def chunks() -> Any:  # no Content-Length: counted while read
        for _ in range(20):
            yield b"x" * 100_000

    chunked = world.client("owner").post(
        "/v1/apps", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    assert world.client("owner").get("/v1/apps/shop/env").json() == {"env": {}}


def test_health_and_metrics(world: World) -> None:
    client = world.api.client()
    assert client.get("/openapi.json").status_code == 404  # off unless SLIPWAY_API_DOCS
    assert client.get("/healthz").json() == {"status": "ok"}
    client.get("/v1/apps")
    assert client.get("/metrics").status_code == 401
    metrics = world.api.internal().get("/metrics").text
    assert 'slipway_api_requests_total{method="GET",route="/v1/apps",status="401"}' in metrics
    assert client.get("/no/such/path").json()["code"] == "not_found"
    assert client.put("/v1/apps").json()["code"] == "method_not_allowed"

"""The store on SQLite and PostgreSQL: keys, names, apps, access, env, migrations."""

from __future__ import annotations

import pytest

from slipway.store import accounts, apps
from slipway.store.apps import Action
from slipway.store.errors import Conflict, Forbidden, Invalid, NotFound
from slipway.store.migrate import is_current, migrate
from tests.control_support import ApiServer
from tests.keys import dsa_public, fresh_public, public


@pytest.mark.parametrize(
    ("kind", "bits", "algorithm"),
    [
        ("ed25519", None, "ssh-ed25519"),
        ("ecdsa", 256, "ecdsa-sha2-nistp256"),
        ("ecdsa", 384, "ecdsa-sha2-nistp384"),
        ("ecdsa", 521, "ecdsa-sha2-nistp521"),
        ("rsa", 2048, "ssh-rsa"),
        ("rsa", 4096, "ssh-rsa"),
    ],
)
def test_accepted_keys(api: ApiServer, kind: str, bits: int | None, algorithm: str) -> None:
    text = public(kind, bits)
    with api.database.session() as session:
        user = accounts.create_user(session, "alice")
        key = accounts.add_key(session, user, text)
    assert key.algorithm == algorithm
    assert key.name == "test@slipway"  # the key's comment
    assert key.fingerprint.startswith("SHA256:")
    assert key.public_key == " ".join(text.split()[:2])  # stored without the comment


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (lambda: public("rsa", 1024), "RSA keys must have 2048 bits or more; this one has 1024"),
        (lambda: dsa_public(), "ssh-dss keys are not accepted (DSA keys are insecure)"),
        (lambda: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", "not a valid SSH public key"),
        (lambda: public("ed25519")[:60], "not a valid SSH public key"),  # truncated
        (lambda: "ssh-ed25519 not-base64!!", "not a valid SSH public key"),
        (lambda: "hello", "not a valid SSH public key"),
        (lambda: "", "the public key is empty"),
        (lambda: "-----BEGIN OPENSSH PRIVATE KEY-----", "this looks like a private key"),
        (lambda: public("ed25519") + "\n" + public("rsa", 2048), "give exactly one public key"),
        (lambda: "ssh-ed25519 " + "A" * 20_000, "the public key is too long"),
    ],
)
def test_refused_keys(api: ApiServer, text: object, message: str) -> None:
    with api.database.session() as session:
        user = accounts.create_user(session, "alice")
        with pytest.raises(Invalid, match=message.replace("(", r"\(").replace(")", r"\)")):
            accounts.add_key(session, user, text())  # type: ignore[operator]
        assert accounts.list_keys(session, user) == []


def test_a_key_belongs_to_one_user_only(api: ApiServer) -> None:
    key = fresh_public()
    with api.database.session() as session:
        alice = accounts.create_user(session, "alice")
        bob = accounts.create_user(session, "bob")
        accounts.add_key(session, alice, key, "laptop")
        with pytest.raises(Conflict, match="already registered by another user"):
            accounts.add_key(session, bob, key, "mine")
        with pytest.raises(Conflict, match="already registered by you"):
            accounts.add_key(session, alice, key, "again")
        with pytest.raises(Conflict, match="you already have a key named 'laptop'"):
            accounts.add_key(session, alice, fresh_public(), "laptop")
        owner = accounts.key_owner(session, accounts.list_keys(session, alice)[0].fingerprint)
        assert owner == ("alice", "laptop")
        assert accounts.list_keys(session, bob) == []


@pytest.mark.parametrize(
    "name",
    [
        "Hello",
        "my.app",
        "..",
        "-app",
        "app-",
        "a",
        "ab",
        "1app",
        "my_app",
        "héllo",
        "app/x",
        "a" * 49,
        "api",
        "admin",
        " app",
        "app\n",
        "",
    ],
)
def test_bad_app_names(api: ApiServer, name: str) -> None:
    with api.database.session() as session:
        user = accounts.create_user(session, "alice")
        with pytest.raises(Invalid):
            apps.create_app(session, user, name)
        assert apps.apps_of(session, user, 0, 10) == ([], 0)


@pytest.mark.parametrize("name", ["abc", "my-app", "a1-b2-c3", "a" * 48])
def test_good_app_names(api: ApiServer, name: str) -> None:
    with api.database.session() as session:
        user = accounts.create_user(session, "alice")
        assert apps.create_app(session, user, name).name == name


def test_app_names_are_unique_and_access_is_by_role(api: ApiServer) -> None:
    with api.database.session() as session:
        alice = accounts.create_user(session, "alice")
        bob = accounts.create_user(session, "bob")
        carol = accounts.create_user(session, "carol")
        app = apps.create_app(session, alice, "shop")
        with pytest.raises(Conflict, match="already taken"):
            apps.create_app(session, bob, "shop")
        apps.add_collaborator(session, app, "bob")
        with pytest.raises(Conflict):
            apps.add_collaborator(session, app, "bob")
        with pytest.raises(NotFound, match="no user named 'dave'"):
            apps.add_collaborator(session, app, "dave")
        for action in Action:
            assert apps.allowed(session, alice, "shop", action) is not None
        assert apps.allowed(session, bob, "shop", Action.PUSH) is not None
        assert apps.allowed(session, bob, "shop", Action.ADMIN) is None
        assert apps.allowed(session, carol, "shop", Action.FETCH) is None
        assert apps.allowed(session, carol, "nope", Action.FETCH) is None
        with pytest.raises(Forbidden):
            apps.app_for(session, bob, "shop", Action.ADMIN)
        with pytest.raises(NotFound):  # a stranger cannot tell it exists
            apps.app_for(session, carol, "shop", Action.ADMIN)
        with pytest.raises(Invalid, match="owner cannot be removed"):
            apps.remove_collaborator(session, app, "alice")
        apps.remove_collaborator(session, app, "bob")
        assert apps.allowed(session, bob, "shop", Action.PUSH) is None


@pytest.mark.parametrize("name", ["lower", "1ABC", "A-B", "A B", "É", "", "A" * 256, "A=B"])
def test_bad_env_names_change_nothing(api: ApiServer, name: str) -> None:
    with api.database.session() as session:
        alice = accounts.create_user(session, "alice")
        app = apps.create_app(session, alice, "shop")
        apps.change_env(session, app, {"KEEP": "1"})
        with pytest.raises(Invalid, match="invalid variable name"):
            apps.change_env(session, app, {"GOOD": "x", name: "y"})
        assert apps.env_of(session, app) == {"KEEP": "1"}


def test_env_set_and_unset_in_one_step(api: ApiServer) -> None:
    with api.database.session() as session:
        alice = accounts.create_user(session, "alice")
        app = apps.create_app(session, alice, "shop")
        assert apps.change_env(session, app, {"A": "1", "B": "2", "_X1": "é 🚀 =\n"}) == {
            "A": "1",
            "B": "2",
            "_X1": "é 🚀 =\n",
        }
        assert apps.change_env(session, app, {"A": None, "B": "3", "MISSING": None}) == {
            "B": "3",
            "_X1": "é 🚀 =\n",
        }
        with pytest.raises(Invalid, match="NUL"):
            apps.change_env(session, app, {"B": "a\x00b"})
        with pytest.raises(Invalid, match="longer than"):
            apps.change_env(session, app, {"B": "x" * 70_000})


def test_tokens_are_stored_hashed_and_can_be_revoked(api: ApiServer) -> None:
    with api.database.session() as session:
        alice = accounts.create_user(session, "alice")
        new = accounts.create_token(session, alice, "ci")
        assert new.token.startswith("slp_") and len(new.token) > 40
        assert new.record.token_hash != new.token and new.token not in new.record.token_hash
        assert accounts.user_for_token(session, new.token) is alice
        accounts.revoke_token(session, alice, new.record.id)
        assert accounts.user_for_token(session, new.token) is None
        assert accounts.user_for_token(session, "slp_guess") is None


def test_migrations_are_idempotent(api: ApiServer) -> None:
    migrate(api.database.engine)
    migrate(api.database.engine)
    assert is_current(api.database.engine)

"""The store on SQLite and PostgreSQL: keys, names, apps, access, env, migrations."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from slipway.store import accounts, apps
from slipway.store.apps import Action
from slipway.store.changes import changes_since
from slipway.store.db import Database
from slipway.store.errors import Conflict, Forbidden, Invalid, NotFound
from slipway.store.migrate import alembic_config, is_current, migrate
from slipway.store.models import Base, utcnow
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


def test_the_models_and_the_migrations_agree(api: ApiServer) -> None:
    """What the code declares is what the migrations build, on both backends."""
    with api.database.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_an_app_recreated_under_the_same_name_gets_another_uid(api: ApiServer) -> None:
    with api.database.session() as session:
        alice = accounts.create_user(session, "alice")
        first = apps.create_app(session, alice, "shop")
        uid = first.uid
        assert apps.destroy_app(session, first) == uid
    with api.database.session() as session:
        again = apps.create_app(session, accounts.user_named(session, "alice"), "shop")
        assert len(again.uid) == 32 and again.uid != uid


def test_access_changes_are_written_with_the_change_itself(api: ApiServer) -> None:
    with api.database.session() as session:
        alice = accounts.create_user(session, "alice")
        bob = accounts.create_user(session, "bob")
        key = accounts.add_key(session, alice, fresh_public())
        app = apps.create_app(session, alice, "shop")
        apps.add_collaborator(session, app, "bob")

    def remove_then_fail() -> None:
        with api.database.session() as session:
            accounts.remove_key(session, accounts.user_named(session, "alice"), key.name)
            raise RuntimeError("the request fails: nothing happened, and no change is told")

    with pytest.raises(RuntimeError):
        remove_then_fail()
    with api.database.session() as session:
        alice = accounts.user_named(session, "alice")
        app = apps.app_for(session, alice, "shop", Action.ADMIN)
        apps.remove_collaborator(session, app, "bob")
        accounts.remove_key(session, alice, key.name)
        apps.destroy_app(session, app)
    with api.database.session() as session:
        recent = changes_since(session, utcnow() - timedelta(minutes=1))
        told = [(c.kind, c.user_name, c.fingerprint, c.app_name) for c in recent]
    assert told == [
        ("key", "alice", key.fingerprint, None),  # added: a refusal cached for it must go
        ("collaborator", "bob", None, "shop"),
        ("key", "alice", key.fingerprint, None),
        ("app", None, None, "shop"),
    ]
    assert bob.name == "bob"


def test_migration_0003_gives_existing_apps_a_uid(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config(database.engine.url.render_as_string(hide_password=False))
    command.upgrade(config, "0002")
    with database.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO apps (name, created_at) VALUES ('shop', '2026'), ('blog', '2026')")
        )
    migrate(database.engine)
    with database.engine.connect() as connection:
        uids = connection.execute(text("SELECT uid FROM apps")).scalars().all()
    assert len(uids) == 2 and len(set(uids)) == 2 and all(len(uid) == 32 for uid in uids)
    database.dispose()


def test_processes_migrating_one_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    script = (
        "import sys; from slipway.store.db import Database; "
        "from slipway.store.migrate import migrate; migrate(Database(sys.argv[1]).engine)"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    errors = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0] * 6, errors
    assert is_current(Database(url).engine)

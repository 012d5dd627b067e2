"""`slipwayd admin` and `slipwayd migrate`: users, tokens and the database, on the server.

They open the store directly, so they say which data dir and database they use, warn when no
`slipwayd up` runs on that data dir (a second shell without SLIPWAY_DATA_DIR is the usual
mistake), and never create a database silently: only `slipwayd migrate` and `up` do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from slipway.daemon.options import DatabaseUrl, DataDir

if TYPE_CHECKING:
    from slipway.store.db import Database

admin = typer.Typer(help="Administration: users, tokens and keys.", no_args_is_help=True)
certs = typer.Typer(help="The router's certificates.", no_args_is_help=True)
admin.add_typer(certs, name="certs")


def _fail(command: str, message: str) -> typer.Exit:
    typer.echo(f"slipwayd admin {command}: {message}", err=True)
    return typer.Exit(1)


def open_store(command: str, data_dir: Path | None, database_url: str | None) -> Database:
    """The store `slipwayd up` (or the API) uses, after saying which one it is on stderr."""
    from sqlalchemy.engine import make_url

    from slipway.config import load_settings
    from slipway.embedded.datadir import running_up
    from slipway.store.db import Database
    from slipway.store.migrate import migrate

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    url = settings.effective_database_url
    shown = make_url(url).render_as_string(hide_password=True)
    typer.echo(f"slipwayd admin: data dir {settings.data_dir}, database {shown}", err=True)
    if settings.database_url is None:  # the embedded SQLite store
        database_file = settings.data_dir / "slipway.db"
        if not database_file.exists():
            raise _fail(
                command,
                f"no Slipway database in {settings.data_dir}. Use the --data-dir (or "
                "SLIPWAY_DATA_DIR) that `slipwayd up` runs with, or start `slipwayd up` "
                "first; `slipwayd migrate` creates an empty database here.",
            )
        if running_up(settings.data_dir) is None:
            typer.echo(
                f"slipwayd admin: warning: no `slipwayd up` runs on {settings.data_dir}; "
                "if yours runs with another --data-dir or SLIPWAY_DATA_DIR, use the same here",
                err=True,
            )
    database = Database(url)
    migrate(database.engine)  # an older database: bring it up to date (under the lock)
    return database


@admin.command("create-user")
def create_user(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, - and _.")],
    is_admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a user and print a new API token for it (only the token, on stdout)."""
    from slipway.store import accounts
    from slipway.store.errors import StoreError

    database = open_store("create-user", data_dir, database_url)
    try:
        with database.session() as session:
            user = accounts.create_user(session, name, is_admin=is_admin)
            new = accounts.create_token(session, user, "created by slipwayd admin")
    except StoreError as error:
        raise _fail("create-user", error.message) from error
    print(new.token)


@admin.command("token")
def token(
    name: Annotated[str, typer.Argument(help="The user's name.")],
    label: Annotated[
        str, typer.Option("--name", help="What the token is for, shown in `slipway tokens list`.")
    ] = "issued by slipwayd admin",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Issue a new API token for a user (e.g. one who lost theirs); prints only the token."""
    from slipway.store import accounts
    from slipway.store.errors import StoreError

    database = open_store("token", data_dir, database_url)
    try:
        with database.session() as session:
            new = accounts.create_token(session, accounts.user_named(session, name), label)
    except StoreError as error:
        raise _fail("token", error.message) from error
    print(new.token)


@admin.command("users")
def users(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """List the users: name, admin or not, live tokens, when created."""
    from sqlalchemy import func, select

    from slipway.store.models import ApiToken, User

    database = open_store("users", data_dir, database_url)
    live = (
        select(ApiToken.user_id, func.count().label("tokens"))
        .where(ApiToken.revoked_at.is_(None))
        .group_by(ApiToken.user_id)
        .subquery()
    )
    with database.session() as session:
        rows = session.execute(
            select(User.name, User.is_admin, User.created_at, live.c.tokens)
            .outerjoin(live, live.c.user_id == User.id)
            .order_by(User.name)
        ).all()
    if not rows:
        typer.echo("no users yet: slipwayd admin create-user NAME --admin", err=True)
        return
    print(f"{'NAME':<40} {'ADMIN':<5} {'TOKENS':>6}  CREATED")
    for name, is_admin, created_at, tokens in rows:
        admin_mark = "yes" if is_admin else "no"
        print(f"{name:<40} {admin_mark:<5} {tokens or 0:>6}  {created_at:%Y-%m-%d %H:%M}")


@admin.command("runners")
def runners(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """List the runners (one per host that runs apps): address, last heartbeat, apps."""
    import time

    from sqlalchemy import func, select

    from slipway.config import load_settings
    from slipway.fleet import registry
    from slipway.jobs.connection import sync_redis
    from slipway.store.models import App

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    database = open_store("runners", data_dir, database_url)
    with database.session() as session:
        rows = session.execute(select(App.runner, func.count()).group_by(App.runner)).all()
        counts = {name or "local": count for name, count in rows}
    url = settings.redis_url or f"unix://{settings.data_dir / 'redis' / 'redis.sock'}"
    found = registry.runners(sync_redis(url))
    if not found:
        typer.echo("no runner has reported: is `slipwayd up` running?", err=True)
        return
    print(f"{'NAME':<20} {'ADDRESS':<20} {'SEEN':>8}  APPS")
    for name, info in sorted(found.items()):
        seen = time.time() - info["seen"]
        state = f"{seen:.0f}s ago" if seen < registry.ALIVE_FOR else "gone"
        print(f"{name:<20} {info['address']:<20} {state:>8}  {counts.get(name, 0)}")


@certs.command("set-default")
def set_default_certificate(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="PEM: the certificate, its chain and its key, in one file."
        ),
    ],
    data_dir: DataDir = None,
) -> None:
    """Serve FILE to every name without a certificate of its own: with a wildcard for the
    apps' domain (*.SLIPWAY_APPS_DOMAIN), every app answers over HTTPS at APP.DOMAIN. The
    router takes it at once, without a reload, and keeps it across restarts."""
    from redis import RedisError

    from slipway.certs import issuer
    from slipway.certs.pem import check_pair, split
    from slipway.config import load_settings
    from slipway.jobs import Client
    from slipway.router.domains import RouterDomains
    from slipway.router.haproxy import RouterFiles
    from slipway.router.runtime import RouterError
    from slipway.store.errors import Invalid

    settings = load_settings(data_dir=data_dir)
    try:
        chain, key = split(file.read_text())
        info = check_pair(chain, key, f"app.{settings.apps_domain}")
    except (OSError, UnicodeDecodeError) as error:
        raise _fail("certs set-default", f"cannot read {file}: {error}") from None
    except Invalid as error:
        raise _fail("certs set-default", f"{file}: {error.message}") from None
    router = RouterDomains(RouterFiles(settings.router_dir or settings.data_dir / "router"))
    try:
        router.certificates.set_default(chain + key)
    except RouterError as error:
        raise _fail("certs set-default", str(error)) from None
    names = ", ".join(info.names)
    print(f"The router serves {file} ({names}, until {info.not_after:%Y-%m-%d}) by default.")
    url = settings.redis_url or f"unix://{settings.data_dir / 'redis' / 'redis.sock'}"
    try:  # apps forcing HTTPS redirect at APP.DOMAIN too, now that a trusted certificate serves it
        Client(url).enqueue(issuer.ROUTER_QUEUE, issuer.SYNC_DOMAINS, [], retry=3)
    except RedisError as error:
        typer.echo(f"slipwayd admin: redirects follow at the next change ({error})", err=True)


@admin.command("key-owner")
def key_owner(
    fingerprint: Annotated[
        str, typer.Argument(help="SHA256:... as `ssh-keygen -lf KEY.pub` prints it.")
    ],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print who holds an SSH key (user and key name), e.g. for someone who cannot add hers."""
    from slipway.store import accounts

    if not fingerprint.startswith("SHA256:"):
        fingerprint = f"SHA256:{fingerprint}"
    database = open_store("key-owner", data_dir, database_url)
    with database.session() as session:
        owner = accounts.key_owner(session, fingerprint)
    if owner is None:
        raise _fail("key-owner", f"no user holds the key {fingerprint}")
    user, key = owner
    print(f"{user} (key {key!r})")


def migrate_command(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Create the database, or bring it to the latest schema (`up` and the API also do)."""
    from slipway.config import load_settings
    from slipway.daemon.up import adopt_repositories
    from slipway.store.db import Database
    from slipway.store.migrate import migrate

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    database = Database(settings.effective_database_url)
    changed = migrate(database.engine)
    adopt_repositories(settings, database)
    shown = database.engine.url.render_as_string(hide_password=True)
    print(
        f"database {shown}: " + ("migrated to" if changed else "already at") + " the latest schema"
    )

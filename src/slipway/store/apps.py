"""Apps, who may use them, and their environment variables."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from slipway.store.accounts import user_named
from slipway.store.changes import record_change
from slipway.store.db import flush_or_conflict
from slipway.store.errors import Conflict, Forbidden, Invalid, NotFound
from slipway.store.models import AddOn, App, Collaborator, EnvVar, User
from slipway.store.names import check_app_name, check_env_name, check_env_value

OWNER = "owner"
COLLABORATOR = "collaborator"


class Action(StrEnum):
    """What a user may be allowed to do with an app."""

    READ = "read"  # see the app, its collaborators and its env
    WRITE = "write"  # change its env
    PUSH = "push"
    FETCH = "fetch"
    TUNNEL = "tunnel"
    ADMIN = "admin"  # manage collaborators, destroy the app


# The one place that decides access: what each role may do.
PERMISSIONS = {
    OWNER: set(Action),
    COLLABORATOR: {Action.READ, Action.WRITE, Action.PUSH, Action.FETCH, Action.TUNNEL},
}


def role_of(session: Session, app: App, user: User) -> str | None:
    return session.scalar(
        select(Collaborator.role).where(
            Collaborator.app_id == app.id, Collaborator.user_id == user.id
        )
    )


# Asked on every git push and fetch: one indexed query, built once.
_ROLE_BY_NAMES = (
    select(Collaborator.role, App.uid)
    .join(App)
    .join(User)
    .where(User.name == bindparam("user"), App.name == bindparam("app"))
)


def uid_if_allowed(
    db: Session | Connection, user_name: str, app_name: str, action: Action
) -> str | None:
    """The app's uid if the user may do ``action`` with it; None if not, or if either is
    missing (the same answer, so that callers cannot tell)."""
    row = db.execute(_ROLE_BY_NAMES, {"user": user_name, "app": app_name}).first()
    if row is None or action not in PERMISSIONS[row[0]]:
        return None
    return str(row[1])


def allowed(session: Session, user: User, app_name: str, action: Action) -> App | None:
    """The app if ``user`` may do ``action`` with it; None whether it is missing or forbidden,
    so that callers cannot tell the two apart."""
    app = session.scalar(select(App).where(App.name == app_name))
    if app is None:
        return None
    role = role_of(session, app, user)
    return app if role is not None and action in PERMISSIONS[role] else None


def app_for(session: Session, user: User, app_name: str, action: Action) -> App:
    """The app, or NotFound (a stranger learns nothing), or Forbidden for a collaborator
    asking for an owner's action."""
    app = allowed(session, user, app_name, action)
    if app is not None:
        return app
    if action is not Action.READ and allowed(session, user, app_name, Action.READ):
        raise Forbidden(f"only the owner of {app_name!r} may do this")
    raise NotFound(f"no app named {app_name!r} (or you have no access to it)")


def create_app(session: Session, owner: User, name: str) -> App:
    check_app_name(name)
    if session.scalar(select(App.id).where(App.name == name)) is not None:
        raise Conflict(f"the name {name!r} is already taken")
    app = App(name=name)
    session.add(app)
    flush_or_conflict(session, f"the name {name!r} is already taken")
    session.add(Collaborator(app=app, user=owner, role=OWNER))
    session.flush()
    return app


def app_by_uid(session: Session, uid: str) -> App:
    app = session.scalar(select(App).where(App.uid == uid))
    if app is None:
        raise NotFound("no app has this repository (it may have been destroyed)")
    return app


def apps_of(session: Session, user: User, offset: int, limit: int) -> tuple[list[App], int]:
    base = select(App).join(Collaborator).where(Collaborator.user_id == user.id)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    apps = session.scalars(base.order_by(App.name).offset(offset).limit(limit))
    return list(apps), total


def owner_of(session: Session, app: App) -> User:
    return session.scalars(
        select(User)
        .join(Collaborator)
        .where(Collaborator.app_id == app.id, Collaborator.role == OWNER)
    ).one()


def destroy_app(session: Session, app: App) -> str:
    """Delete the app's rows; returns its uid, for removing its files."""
    record_change(session, "app", app=app.name)
    session.delete(app)
    return app.uid


def collaborators(session: Session, app: App) -> list[Collaborator]:
    return list(
        session.scalars(
            select(Collaborator).where(Collaborator.app_id == app.id).order_by(Collaborator.id)
        )
    )


def add_collaborator(session: Session, app: App, user_name: str) -> Collaborator:
    user = user_named(session, user_name)
    if role_of(session, app, user) is not None:
        raise Conflict(f"{user_name!r} already has access to {app.name!r}")
    collaborator = Collaborator(app=app, user=user, role=COLLABORATOR)
    session.add(collaborator)
    flush_or_conflict(session, f"{user_name!r} already has access to {app.name!r}")
    return collaborator


def remove_collaborator(session: Session, app: App, user_name: str) -> None:
    user = user_named(session, user_name)
    collaborator = session.scalar(
        select(Collaborator).where(Collaborator.app_id == app.id, Collaborator.user_id == user.id)
    )
    if collaborator is None:
        raise NotFound(f"{user_name!r} is not a collaborator of {app.name!r}")
    if collaborator.role == OWNER:
        raise Invalid("the owner cannot be removed from their app")
    session.delete(collaborator)
    record_change(session, "collaborator", user=user_name, app=app.name)


def env_of(session: Session, app: App) -> dict[str, str]:
    rows = session.scalars(select(EnvVar).where(EnvVar.app_id == app.id).order_by(EnvVar.name))
    return {row.name: row.value for row in rows}


def change_env(session: Session, app: App, changes: dict[str, str | None]) -> dict[str, str]:
    """Set (a str) and unset (None) variables in one step; all checked before any change."""
    for name, value in changes.items():
        check_env_name(name)
        if value is not None:
            check_env_value(name, value)
    existing = {
        row.name: row for row in session.scalars(select(EnvVar).where(EnvVar.app_id == app.id))
    }
    for name, value in changes.items():
        row = existing.get(name)
        if value is None:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(EnvVar(app=app, name=name, value=value))
        else:
            row.value = value
    session.flush()
    return env_of(session, app)


DATABASE_KINDS = ("postgresql", "mysql", "redis", "mongodb")


def add_database(session: Session, app: App, kind: str, host: str, port: int) -> AddOn:
    """Record where the platform runs an app's database (administrators only)."""
    if kind not in DATABASE_KINDS:
        raise Invalid(f"unknown database kind {kind!r}: use {', '.join(DATABASE_KINDS)}")
    if not 0 < port < 65536 or not host or len(host) > 255:
        raise Invalid(f"invalid database address {host}:{port}")
    addon = AddOn(app=app, kind=kind, host=host, port=port)
    session.add(addon)
    session.flush()
    return addon

"""Releases: numbered vN per app, each a slug plus the config and process types it runs with.

A build makes one (a new slug); a config change makes one reusing the current slug, so the
runtime always has one immutable thing to run, and an earlier one to roll back to.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.store import apps, formation
from slipway.store.errors import Conflict, Invalid, NotFound
from slipway.store.models import App, Release
from slipway.wire.deployment_states import STARTING

SECRET_BYTES = 32  # a generated secret: 64 hex characters, as Heroku's app.json makes


@dataclass(frozen=True)
class ConfigDefault:
    """A config var's default: a value, a generated secret, or (required) none."""

    value: str | None = None
    generator: str | None = None  # "secret"
    required: bool = False


@dataclass(frozen=True)
class FirstDeploy:
    """What the app's manifest (app.json) asks of its first release: config var defaults
    (never over one already set), the formation, and a command run once after the
    release command."""

    env: dict[str, ConfigDefault] = field(default_factory=dict)
    formation: dict[str, int] = field(default_factory=dict)
    command: str | None = None


@dataclass(frozen=True)
class Build:
    """What a build produced, for its release."""

    slug_id: str
    slug_host: str
    slug_size: int
    commit: str
    buildpack: str
    process_types: dict[str, str]
    release_command: str | None
    build_seconds: float | None = None
    first_deploy: FirstDeploy | None = None  # the app's app.json, if it has one


def current_release(session: Session, app: App) -> Release | None:
    return session.scalar(
        select(Release).where(Release.app_id == app.id).order_by(Release.version.desc()).limit(1)
    )


def current_releases(session: Session) -> list[tuple[App, Release]]:
    """Every app's newest release."""
    newest = (
        select(Release.app_id, func.max(Release.version).label("version"))
        .group_by(Release.app_id)
        .subquery()
    )
    rows = session.execute(
        select(App, Release)
        .join(Release, Release.app_id == App.id)
        .join(newest, (newest.c.app_id == Release.app_id) & (newest.c.version == Release.version))
        .order_by(App.id)
    )
    return [(app, release) for app, release in rows]


def release_of(session: Session, app: App, version: int) -> Release:
    release = session.scalar(
        select(Release).where(Release.app_id == app.id, Release.version == version)
    )
    if release is None:
        raise NotFound(f"{app.name} has no release v{version}")
    return release


def releases_of(session: Session, app: App, offset: int, limit: int) -> tuple[list[Release], int]:
    base = select(Release).where(Release.app_id == app.id)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    found = session.scalars(base.order_by(Release.version.desc()).offset(offset).limit(limit))
    return list(found), total


def _add(session: Session, app: App, **fields: object) -> Release:
    """The next version. Two releases made at once (a build and a config change) both get
    one: the app's row is locked first where the database can (PostgreSQL), and the loser
    of the unique constraint retries with the next number where it cannot (SQLite, which
    serializes writers anyway)."""
    session.execute(select(App.id).where(App.id == app.id).with_for_update())
    for _ in range(5):
        latest = session.scalar(select(func.max(Release.version)).where(Release.app_id == app.id))
        release = Release(app_id=app.id, version=(latest or 0) + 1, status=STARTING, **fields)
        try:
            with session.begin_nested():
                session.add(release)
                session.flush()
            return release
        except IntegrityError:
            continue
    raise Conflict(f"could not number a new release of {app.name!r}; try again")


def release_build(
    session: Session,
    app: App,
    build: Build,
    config: dict[str, str],
    user: str | None,
    deployment_id: int,
) -> Release:
    """The build's release, with ``config``; the app's first one also with what its
    app.json asks (and the config then)."""
    first_deploy_command = None
    if build.first_deploy is not None and current_release(session, app) is None:
        config = _apply_first_deploy(session, app, build, build.first_deploy)
        first_deploy_command = build.first_deploy.command
    return _add(
        session,
        app,
        description=f"Deploy {build.commit[:7]}",
        slug_id=build.slug_id,
        slug_host=build.slug_host,
        slug_size=build.slug_size,
        commit=build.commit,
        buildpack=build.buildpack,
        process_types=json.dumps(build.process_types),
        release_command=build.release_command,
        first_deploy_command=first_deploy_command,
        config=json.dumps(config),
        created_by=user,
        deployment_id=deployment_id,
        build_seconds=build.build_seconds,
    )


def _apply_first_deploy(
    session: Session, app: App, build: Build, wanted: FirstDeploy
) -> dict[str, str]:
    """Set the config vars not set yet (a generated secret is never shown) and the
    formation, all checked first; the config now."""
    env = apps.env_of(session, app)
    changes: dict[str, str | None] = {}
    for name, default in sorted(wanted.env.items()):
        if name in env:
            continue
        if default.value is not None:
            changes[name] = default.value
        elif default.generator == "secret":
            changes[name] = secrets.token_hex(SECRET_BYTES)
        elif default.required:
            raise Invalid(
                f"app.json: {name} is required and has no value: set it with "
                f"`slipway env set {name}=...`, then push again"
            )
    if wanted.formation:
        formation.scale(app, list(build.process_types), wanted.formation)
    return apps.change_env(session, app, changes) if changes else env


def release_config(
    session: Session, app: App, config: dict[str, str], description: str, user: str
) -> Release | None:
    """A new release of the current slug with ``config``; None before the first build."""
    current = current_release(session, app)
    if current is None:
        return None
    return _reuse(session, app, current, description[:255], json.dumps(config), user)


def release_rollback(session: Session, app: App, version: int, user: str) -> Release:
    """A new release with release ``version``'s slug and config (no build)."""
    target = release_of(session, app, version)
    current = current_release(session, app)
    if current is not None and current.version == version:
        raise Conflict(f"v{version} is the current release of {app.name} already")
    return _reuse(session, app, target, f"Rollback to v{version}", target.config, user)


def _reuse(
    session: Session, app: App, source: Release, description: str, config: str, user: str
) -> Release:
    """A new release of ``source``'s slug and process types (no build), with ``config``
    (JSON)."""
    return _add(
        session,
        app,
        description=description,
        slug_id=source.slug_id,
        slug_host=source.slug_host,
        slug_size=source.slug_size,
        commit=source.commit,
        buildpack=source.buildpack,
        process_types=source.process_types,
        release_command=source.release_command,
        config=config,
        created_by=user,
    )


def config_change_description(changes: dict[str, str | None]) -> str:
    """Heroku's wording: "Set A, B config vars", "Unset C config var"."""
    parts = []
    for verb, names in (
        ("Set", [n for n, v in changes.items() if v is not None]),
        ("Unset", [n for n, v in changes.items() if v is None]),
    ):
        if names:
            plural = "s" if len(names) > 1 else ""
            parts.append(f"{verb} {', '.join(sorted(names))} config var{plural}")
    return "; ".join(parts)


def kept_slugs(session: Session, app: App, keep: int) -> list[str]:
    """The slugs of the app's newest ``keep`` releases: the ones a repo host keeps."""
    rows = session.scalars(
        select(Release.slug_id)
        .where(Release.app_id == app.id)
        .order_by(Release.version.desc())
        .limit(keep)
    )
    return sorted(set(rows))


def has_slug(session: Session, app: App, slug_id: str) -> bool:
    found = session.scalar(
        select(Release.id).where(Release.app_id == app.id, Release.slug_id == slug_id).limit(1)
    )
    return found is not None

"""A change of an app's config, released: the same slug with the new variables, as on
Heroku (env set/unset, add-ons)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session

from slipway.api import runners
from slipway.store import apps, releases
from slipway.store.models import App, User


@dataclass
class ConfigChange:
    """A changed config, and the release it made (to deploy once the change is committed)."""

    env: dict[str, str]
    version: int | None = None
    deploy: Callable[[], None] = lambda: None


def change_config(
    request: Request,
    session: Session,
    found: App,
    user: User,
    changes: dict[str, str | None],
    description: str | None = None,
) -> ConfigChange:
    """Apply ``changes`` to the app's config and release it, if it changed anything."""
    before = apps.env_of(session, found)
    env = apps.change_env(session, found, changes)
    if env == before:
        return ConfigChange(env)  # nothing to release
    description = description or releases.config_change_description(changes)
    release = releases.release_config(session, found, env, description, user.name)
    if release is None:
        return ConfigChange(env)
    runner, uid, version = runners.place(request.app, session, found), found.uid, release.version
    description += f" by {user.name}"
    return ConfigChange(
        env,
        version,
        lambda: runners.deploy_release(request.app, runner, uid, version, description),
    )

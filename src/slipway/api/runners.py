"""What the API asks of runners, as jobs on their queues (slipway.runtime.jobs), and which
runner each app is placed on."""

from __future__ import annotations

import logging

import redis
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipway.applog.stream import AppLog
from slipway.fleet import registry
from slipway.jobs import Client
from slipway.store.models import App

log = logging.getLogger("slipway.api")

# slipway.runtime.jobs' names, without importing the runtime
DEPLOY = "slipway.deploy"
STOP_APP = "slipway.stop_app"
SCALE = "slipway.scale"
RESTART = "slipway.restart"
DEFAULT_RUNNER = "local"  # `slipwayd up`'s


def runner_of(found: App) -> str:
    return found.runner or DEFAULT_RUNNER


def place(app: FastAPI, session: Session, found: App) -> str:
    """The runner the app's next deploy goes to: its own while it is alive, else the live
    runner with the fewest apps (the app moves there)."""
    jobs: Client | None = app.state.jobs
    try:
        alive = registry.alive(jobs.redis) if jobs is not None else []
    except redis.RedisError as error:
        log.warning("cannot read the runners' heartbeats: %s", error)
        alive = []
    if not alive or found.runner in alive:
        return runner_of(found)
    counts = dict(session.execute(select(App.runner, func.count()).group_by(App.runner)).all())
    found.runner = min(alive, key=lambda name: (counts.get(name, 0), name))
    return found.runner


def deploy_release(app: FastAPI, runner: str, app_uid: str, version: int, description: str) -> None:
    """Ask the runner to run the new release (it replaces the running one with no
    downtime); the app's log says it was made."""
    jobs: Client | None = app.state.jobs
    if jobs is not None:
        settings = app.state.settings
        try:
            AppLog(jobs.redis, settings.log_max_lines, settings.log_max_days).event(
                app_uid, f"Release v{version} created: {description}", version=version
            )
        except redis.RedisError as error:
            log.warning("cannot log the release of %s: %s", app_uid, error)
    _ask(app, runner, DEPLOY, [app_uid, version], retry=False)


def stop_app(app: FastAPI, runner: str, app_uid: str, name: str) -> None:
    """Ask the runner to stop a destroyed app's instances and route its host nowhere."""
    _ask(app, runner, STOP_APP, [app_uid, name], retry=3)


def scale(app: FastAPI, runner: str, app_uid: str, formation: dict[str, int]) -> None:
    """Ask the runner to run this many instances of each process type."""
    _ask(app, runner, SCALE, [app_uid, formation], retry=False)


def restart(app: FastAPI, runner: str, app_uid: str, scope: list[str]) -> None:
    """Ask the runner to replace instances (all, some types, some instances)."""
    _ask(app, runner, RESTART, [app_uid, scope], retry=False)


def _ask(app: FastAPI, runner: str, job: str, args: list[object], retry: int | bool) -> None:
    jobs: Client | None = app.state.jobs
    if jobs is None:
        log.warning("no Redis configured: %s%s is not asked of the runner", job, args)
        return
    try:
        jobs.enqueue(f"runner-{runner}", job, args, retry=retry)
    except redis.RedisError as error:
        log.error("cannot ask the runner %s for %s%s: %s", runner, job, args, error)

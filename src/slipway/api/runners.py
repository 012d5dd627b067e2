"""What the API asks of runners, as jobs on their queues (slipway.runtime.jobs)."""

from __future__ import annotations

import logging

import redis
from fastapi import FastAPI

from slipway.jobs import Client

log = logging.getLogger("slipway.api")

# slipway.runtime.jobs' names, without importing the runtime
DEPLOY = "slipway.deploy"
STOP_APP = "slipway.stop_app"
SCALE = "slipway.scale"
RESTART = "slipway.restart"
RUNNER_QUEUE = "runner-local"  # one runner, on this host, for now


def deploy_release(app: FastAPI, app_uid: str, version: int) -> None:
    """Ask the runner to run the release (it replaces the running one with no downtime)."""
    _ask(app, DEPLOY, [app_uid, version], retry=False)


def stop_app(app: FastAPI, app_uid: str, name: str) -> None:
    """Ask the runner to stop a destroyed app's instances and route its host nowhere."""
    _ask(app, STOP_APP, [app_uid, name], retry=3)


def scale(app: FastAPI, app_uid: str, formation: dict[str, int]) -> None:
    """Ask the runner to run this many instances of each process type."""
    _ask(app, SCALE, [app_uid, formation], retry=False)


def restart(app: FastAPI, app_uid: str, scope: list[str]) -> None:
    """Ask the runner to replace instances (all, some types, some instances)."""
    _ask(app, RESTART, [app_uid, scope], retry=False)


def _ask(app: FastAPI, job: str, args: list[object], retry: int | bool) -> None:
    jobs: Client | None = app.state.jobs
    if jobs is None:
        log.warning("no Redis configured: %s%s is not asked of the runner", job, args)
        return
    try:
        jobs.enqueue(RUNNER_QUEUE, job, args, retry=retry)
    except redis.RedisError as error:
        log.error("cannot ask the runner for %s%s: %s", job, args, error)

"""``/v1/apps/{app}``: the formation (instances per process type) and restarts; the runner
carries them out with no downtime (slipway.runtime)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import redis
from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from slipway.api import runners
from slipway.api.auth import Caller, CurrentCaller, Db
from slipway.api.errors import ApiError
from slipway.api.schemas import FormationOut, ProcessOut, RestartIn, ScaleIn, StatsOut
from slipway.fleet import processes
from slipway.jobs import Client
from slipway.store import apps, formation, releases
from slipway.store.apps import Action
from slipway.store.db import Database
from slipway.store.errors import Conflict
from slipway.store.models import App

router = APIRouter(prefix="/v1/apps/{app}", tags=["processes"])
T = TypeVar("T")


def _process_types(session: Session, app: App) -> list[str]:
    release = releases.current_release(session, app)
    if release is None:
        raise Conflict(f"{app.name} has no release yet: push it first")
    return list(json.loads(release.process_types))


@router.get("/ps")
def list_processes(request: Request, db: Db, caller: CurrentCaller, app: str) -> list[ProcessOut]:
    """The app's instances as their runners report them: state, release, host, since."""
    found = _reported(request, db, caller, app, processes.processes_of, "reports")
    return [
        ProcessOut(
            name=p.name,
            type=p.kind,
            state=p.state,
            release=p.release,
            host=p.host,
            pid=p.pid,
            since=datetime.fromtimestamp(p.since, UTC),
            restarts=p.restarts,
            last_exit=p.exit,
        )
        for p in found
    ]


@router.get("/stats")
def instance_stats(request: Request, db: Db, caller: CurrentCaller, app: str) -> list[StatsOut]:
    """CPU and memory of each instance, as its runner last sampled them (every 2 s)."""
    found = _reported(request, db, caller, app, processes.stats_of, "samples")
    return [
        StatsOut(
            name=s.name,
            cpu_percent=s.cpu_percent,
            memory=s.memory,
            memory_peak=s.memory_peak,
            memory_limit=s.memory_limit,
            restarts=s.restarts,
            sampled_at=datetime.fromtimestamp(s.at, UTC),
        )
        for s in found
    ]


def _reported(
    request: Request,
    db: Database,
    caller: Caller,
    app: str,
    read: Callable[[redis.Redis, str], list[T]],
    what: str,
) -> list[T]:
    """What the app's runners reported (``read`` from Redis), once the caller may see it."""
    with db.session() as session:
        uid = apps.app_for(session, caller.user(session), app, Action.READ).uid
    jobs: Client | None = request.app.state.jobs
    if jobs is None:
        raise ApiError(503, "unavailable", "no Redis configured: no runner reports here")
    try:
        return read(jobs.redis, uid)
    except redis.RedisError as error:
        message = f"the runners' {what} cannot be read: {error}"
        raise ApiError(503, "unavailable", message) from None


@router.get("/formation")
def get_formation(db: Db, caller: CurrentCaller, app: str) -> FormationOut:
    """Instances per process type of the current release."""
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.READ)
        release = releases.current_release(session, found)
        types = list(json.loads(release.process_types)) if release else []
        return FormationOut(formation=formation.formation_of(found, types))


@router.patch("/formation")
def scale(request: Request, db: Db, caller: CurrentCaller, app: str, body: ScaleIn) -> FormationOut:
    """Change how many instances of some process types run: new ones take traffic once
    they listen, extra ones leave the router before they stop."""
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.WRITE)
        now = formation.scale(found, _process_types(session, found), body.formation)
        uid, runner = found.uid, runners.runner_of(found)
    runners.scale(request.app, runner, uid, now)
    return FormationOut(formation=now)


@router.post("/restart", status_code=202)
def restart(request: Request, db: Db, caller: CurrentCaller, app: str, body: RestartIn) -> None:
    """Restart every instance, or those of some types (``web``) or some instances
    (``web.1``, ``web-1``): each replacement takes traffic before the one it replaces
    stops."""
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.WRITE)
        scope = formation.check_scope(_process_types(session, found), body.scope)
        uid, runner = found.uid, runners.runner_of(found)
    runners.restart(request.app, runner, uid, scope)

"""``/v1/apps/{app}``: the formation (instances per process type) and restarts; the runner
carries them out with no downtime (slipway.runtime)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from slipway.api import runners
from slipway.api.auth import CurrentCaller, Db
from slipway.api.schemas import FormationOut, RestartIn, ScaleIn
from slipway.store import apps, formation, releases
from slipway.store.apps import Action
from slipway.store.errors import Conflict
from slipway.store.models import App

router = APIRouter(prefix="/v1/apps/{app}", tags=["processes"])


def _process_types(session: Session, app: App) -> list[str]:
    release = releases.current_release(session, app)
    if release is None:
        raise Conflict(f"{app.name} has no release yet: push it first")
    return list(json.loads(release.process_types))


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
        uid = found.uid
    runners.scale(request.app, uid, now)
    return FormationOut(formation=now)


@router.post("/restart", status_code=202)
def restart(request: Request, db: Db, caller: CurrentCaller, app: str, body: RestartIn) -> None:
    """Restart every instance, or those of some types (``web``) or some instances
    (``web.1``, ``web-1``): each replacement takes traffic before the one it replaces
    stops."""
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.WRITE)
        scope = formation.check_scope(_process_types(session, found), body.scope)
        uid = found.uid
    runners.restart(request.app, uid, scope)

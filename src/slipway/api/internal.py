"""``/internal``: what edge services (the gateway, repo hosts) ask, with the shared secret.

They hold no user data: every push, fetch and tunnel is decided here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from slipway.api.auth import Db, edge_service
from slipway.api.errors import ApiError
from slipway.api.schemas import (
    AuthorizeIn,
    AuthorizeOut,
    Destination,
    KeyOwnerOut,
    Repository,
)
from slipway.store import accounts, apps
from slipway.store.apps import Action

router = APIRouter(prefix="/internal", dependencies=[Depends(edge_service)], tags=["internal"])


@router.get("/keys")
async def key_owner(db: Db, fingerprint: Annotated[str, Query(max_length=100)]) -> KeyOwnerOut:
    """Who owns the SSH key with this SHA256 fingerprint (as ``ssh-keygen -l`` prints it)."""
    with db.connect() as connection:
        found = accounts.key_owner(connection, fingerprint)
    if found is None:
        raise ApiError(404, "not_found", "no such key")
    return KeyOwnerOut(user=found[0], key=found[1], fingerprint=fingerprint)


@router.post("/authorize")
async def authorize(request: Request, db: Db, body: AuthorizeIn) -> AuthorizeOut:
    """May ``user`` push, fetch or tunnel to ``app``? The same answer whether the app is
    missing or forbidden; when allowed, where its repository lives."""
    action = Action(body.action)
    with db.connect() as connection:
        allowed = apps.may(connection, body.user, body.app, action)
        database = (
            apps.database_of(connection, body.app) if allowed and action is Action.TUNNEL else None
        )
    if not allowed:
        return AuthorizeOut(allowed=False)
    settings = request.app.state.settings
    path = settings.repositories_dir / f"{body.app}.git"
    return AuthorizeOut(
        allowed=True,
        repository=Repository(host=settings.repo_host, path=str(path)),
        database=Destination(host=database[0], port=database[1]) if database else None,
    )

"""``/internal``: what edge services (the gateway, repo hosts) ask, with the shared secret.

They hold no user data: every push, fetch and tunnel is decided here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from slipway.api.auth import Db, edge_service
from slipway.api.errors import ApiError
from slipway.api.schemas import AuthorizeIn, AuthorizeOut, KeyOwnerOut, Repository
from slipway.store import accounts, apps
from slipway.store.apps import Action
from slipway.store.models import User

router = APIRouter(prefix="/internal", dependencies=[Depends(edge_service)], tags=["internal"])


@router.get("/keys")
def key_owner(db: Db, fingerprint: Annotated[str, Query(max_length=100)]) -> KeyOwnerOut:
    """Who owns the SSH key with this SHA256 fingerprint (as ``ssh-keygen -l`` prints it)."""
    with db.session() as session:
        found = accounts.key_owner(session, fingerprint)
        if found is None:
            raise ApiError(404, "not_found", "no such key")
        user, key = found
        return KeyOwnerOut(user=user.name, key=key.name, fingerprint=key.fingerprint)


@router.post("/authorize")
def authorize(request: Request, db: Db, body: AuthorizeIn) -> AuthorizeOut:
    """May ``user`` push, fetch or tunnel to ``app``? The same answer whether the app is
    missing or forbidden; when allowed, where its repository lives."""
    with db.session() as session:
        user = session.query(User).filter(User.name == body.user).one_or_none()
        app = user and apps.allowed(session, user, body.app, Action(body.action))
        if not app:
            return AuthorizeOut(allowed=False)
        path = request.app.state.settings.repositories_dir / f"{app.name}.git"
        return AuthorizeOut(allowed=True, repository=Repository(host="local", path=str(path)))

"""Who is calling: a user with a bearer token (/v1), or an edge service with the shared
secret (/internal)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.api.errors import ApiError
from slipway.store.accounts import hash_token
from slipway.store.db import Database
from slipway.store.models import ApiToken, User, utcnow

# Writing last_used_at on every request would turn each read into a write.
LAST_USED_PRECISION = timedelta(minutes=1)

bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer slp_...`")


# Dependencies that do no I/O are async, so they run on the event loop instead of costing a
# hop to the thread pool each.
async def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


Db = Annotated[Database, Depends(database)]


@dataclass(frozen=True)
class Caller:
    """The authenticated user, detached from any session: endpoints load what they need."""

    id: int
    name: str
    is_admin: bool

    def user(self, session: Session) -> User:
        user = session.get(User, self.id)
        if user is None:  # deleted while the request ran
            raise unauthorized("this token's user no longer exists")
        return user


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def caller(
    db: Db, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    return authenticate(db, credentials.credentials if credentials else None)


def authenticate(db: Database, token: str | None) -> Caller:
    """The token's user, or ApiError 401 (also for WebSockets, which FastAPI's HTTPBearer
    does not serve)."""
    if not token:
        raise unauthorized("missing API token: send `Authorization: Bearer TOKEN` (slipway login)")
    with db.session() as session:
        record = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        if record is None or record.revoked_at is not None:
            raise unauthorized("invalid or revoked API token (slipway login)")
        now = utcnow()
        last = record.last_used_at
        if last is None or now - last > LAST_USED_PRECISION:
            record.last_used_at = now
        user = record.user
        return Caller(user.id, user.name, user.is_admin)


CurrentCaller = Annotated[Caller, Depends(caller)]


async def edge_service(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """The caller holds the shared secret. An empty one is refused outright, whatever the
    configured secret is (compare_digest finds two empty strings equal)."""
    expected: str = request.app.state.internal_secret
    given = credentials.credentials if credentials else ""
    if not given or not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise unauthorized("the internal API needs the shared secret")

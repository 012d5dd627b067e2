"""Access changes, for the edge services that cache who may do what (the SSH gateway).

Each change is written in the transaction that makes it, so a reader never sees a change
that did not happen. Readers ask for the changes of the last few seconds and remember which
they have seen: ids from concurrent transactions may commit out of order, and a window
covers that where a "greater than the last id" cursor would skip one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from slipway.store.models import AccessChange, utcnow

RETENTION = timedelta(hours=1)
KINDS = ("key", "collaborator", "app")


def record_change(
    session: Session,
    kind: str,
    *,
    user: str | None = None,
    fingerprint: str | None = None,
    app: str | None = None,
) -> None:
    assert kind in KINDS, kind
    session.add(AccessChange(kind=kind, user_name=user, fingerprint=fingerprint, app_name=app))
    # Keep the table short: what is older than any reader's window is of no use.
    session.execute(delete(AccessChange).where(AccessChange.created_at < utcnow() - RETENTION))


def changes_since(session: Session, since: datetime) -> list[AccessChange]:
    return list(
        session.scalars(
            select(AccessChange).where(AccessChange.created_at >= since).order_by(AccessChange.id)
        )
    )

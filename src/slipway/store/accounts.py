"""Users, their API tokens and their SSH keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from slipway.store.changes import record_change
from slipway.store.db import flush_or_conflict
from slipway.store.errors import Conflict, NotFound
from slipway.store.models import ApiToken, SshKey, User, utcnow
from slipway.store.names import check_label, check_user_name
from slipway.store.sshkeys import parse_public_key

TOKEN_PREFIX = "slp_"  # noqa: S105 - a marker that makes tokens recognisable, not a secret


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough to keep them safe at rest."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once, never stored
    record: ApiToken


def create_user(session: Session, name: str, is_admin: bool = False) -> User:
    check_user_name(name)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"the user {name!r} already exists")
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    flush_or_conflict(session, f"the user {name!r} already exists")
    return user


def user_named(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def create_token(session: Session, user: User, name: str = "default") -> NewToken:
    check_label("token", name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        user=user, name=name, token_hash=hash_token(token), prefix=token[: len(TOKEN_PREFIX) + 4]
    )
    session.add(record)
    session.flush()
    return NewToken(token, record)


def user_for_token(session: Session, token: str) -> User | None:
    """The user a live (not revoked) token belongs to; records when it was last used."""
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if record is None or record.revoked_at is not None:
        return None
    record.last_used_at = utcnow()
    return record.user


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )


def revoke_token(session: Session, user: User, token_id: int) -> ApiToken:
    record = session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    if record is None:
        raise NotFound(f"no token {token_id}")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return record


def add_key(session: Session, user: User, public_key: str, name: str | None = None) -> SshKey:
    parsed = parse_public_key(public_key)
    name = check_label("key", name or parsed.comment or parsed.fingerprint[7:19])
    taken = session.scalar(select(SshKey).where(SshKey.fingerprint == parsed.fingerprint))
    if taken is not None:
        owner = "you" if taken.user_id == user.id else "another user"
        raise Conflict(
            f"this key ({parsed.fingerprint}) is already registered by {owner}; "
            "a key can belong to one user only"
        )
    if (
        session.scalar(select(SshKey.id).where(SshKey.user_id == user.id, SshKey.name == name))
        is not None
    ):
        raise Conflict(f"you already have a key named {name!r}")
    key = SshKey(
        user=user,
        name=name,
        algorithm=parsed.algorithm,
        bits=parsed.bits,
        public_key=parsed.public_key,
        fingerprint=parsed.fingerprint,
    )
    session.add(key)
    flush_or_conflict(session, f"this key ({parsed.fingerprint}) is already registered")
    # A gateway that refused this key a moment ago must not keep refusing it.
    record_change(session, "key", user=user.name, fingerprint=parsed.fingerprint)
    return key


def list_keys(session: Session, user: User) -> list[SshKey]:
    return list(
        session.scalars(select(SshKey).where(SshKey.user_id == user.id).order_by(SshKey.id))
    )


def remove_key(session: Session, user: User, name: str) -> None:
    key = session.scalar(select(SshKey).where(SshKey.user_id == user.id, SshKey.name == name))
    if key is None:
        raise NotFound(f"you have no key named {name!r}")
    session.delete(key)
    record_change(session, "key", user=user.name, fingerprint=key.fingerprint)


# Asked on every SSH login: one indexed join, built once.
_KEY_OWNER = (
    select(User.name, SshKey.name)
    .join(SshKey.user)
    .where(SshKey.fingerprint == bindparam("fingerprint"))
)


def key_owner(db: Session | Connection, fingerprint: str) -> tuple[str, str] | None:
    """(user name, key name) for a fingerprint (a plain Connection is fastest)."""
    row = db.execute(_KEY_OWNER, {"fingerprint": fingerprint}).first()
    return None if row is None else (row[0], row[1])

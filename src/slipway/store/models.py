"""The tables. Access to an app is a row in ``collaborators`` (role owner or collaborator):
one place decides who may do what."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite gives naive ones back otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    # Stable constraint names, so migrations can refer to them on SQLite and PostgreSQL alike.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class User(Timestamped, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    keys: Mapped[list[SshKey]] = relationship(back_populates="user", cascade="all, delete-orphan")


class ApiToken(Timestamped, Base):
    """Only a SHA-256 of the token is kept: the token itself is shown once, at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # shown in listings, to tell tokens apart
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship(back_populates="tokens")


class SshKey(Timestamped, Base):
    __tablename__ = "ssh_keys"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    algorithm: Mapped[str] = mapped_column(String(40))
    bits: Mapped[int] = mapped_column(Integer)
    public_key: Mapped[str] = mapped_column(Text)  # "ALGORITHM BASE64", no comment
    fingerprint: Mapped[str] = mapped_column(String(60), unique=True)  # "SHA256:..."

    user: Mapped[User] = relationship(back_populates="keys")


def new_app_uid() -> str:
    return uuid.uuid4().hex


class App(Timestamped, Base):
    """An app. Its files (repository, later slugs, logs, caches) are keyed by ``uid``, random
    and never reused, not by its name: a re-created name starts empty."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(48), unique=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_app_uid)
    # The branch whose pushes build; None until the first push of main or master sets it.
    deploy_branch: Mapped[str | None] = mapped_column(String(255))
    # Instances per process type, as scaled (JSON); types never scaled take their default.
    formation: Mapped[str | None] = mapped_column(Text)
    # The runner its instances run on (placed by the API at its first deploy).
    runner: Mapped[str | None] = mapped_column(String(40))
    # Requests over HTTP to its domains are redirected to HTTPS (308).
    force_https: Mapped[bool] = mapped_column(Boolean, default=False)

    collaborators: Mapped[list[Collaborator]] = relationship(
        back_populates="app", cascade="all, delete-orphan"
    )
    env: Mapped[list[EnvVar]] = relationship(back_populates="app", cascade="all, delete-orphan")
    addons: Mapped[list[AddOn]] = relationship(back_populates="app", cascade="all, delete-orphan")
    domains: Mapped[list[Domain]] = relationship(back_populates="app", cascade="all, delete-orphan")


class Collaborator(Timestamped, Base):
    __tablename__ = "collaborators"
    __table_args__ = (UniqueConstraint("app_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))  # "owner" or "collaborator"

    app: Mapped[App] = relationship(back_populates="collaborators")
    user: Mapped[User] = relationship()


class EnvVar(Base):
    __tablename__ = "env_vars"
    __table_args__ = (UniqueConstraint("app_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    app: Mapped[App] = relationship(back_populates="env")


class AddOn(Timestamped, Base):
    """A service the platform runs for an app, e.g. its database; `slipway db-tunnel` reaches
    only these addresses, never one a user could choose."""

    __tablename__ = "addons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # "postgresql", "redis", ...
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    plan: Mapped[str | None] = mapped_column(String(40))
    resource: Mapped[str | None] = mapped_column(String(63))  # None: recorded by an admin
    variables: Mapped[str | None] = mapped_column(Text)  # JSON list: the config it set

    app: Mapped[App] = relationship(back_populates="addons")


class Domain(Timestamped, Base):
    """A name an app answers at besides APP.DOMAIN, and its certificate: one from ACME
    (``source`` acme, renewed by the platform) or one its users brought (``custom``)."""

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    hostname: Mapped[str] = mapped_column(String(253), unique=True)
    source: Mapped[str] = mapped_column(String(10))  # "acme" or "custom"
    state: Mapped[str] = mapped_column(String(20))  # see slipway.store.domains
    reason: Mapped[str | None] = mapped_column(Text)  # why the last attempt failed
    retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # the next attempt
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failed in a row
    certificate: Mapped[str | None] = mapped_column(Text)  # PEM chain, leaf first
    private_key: Mapped[str | None] = mapped_column(Text)  # PEM; never in an API answer
    not_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    issuer: Mapped[str | None] = mapped_column(String(255))
    # An ACME order in flight and the key of its CSR, to resume it after a crash.
    order_url: Mapped[str | None] = mapped_column(String(500))
    order_key: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    app: Mapped[App] = relationship(back_populates="domains")


class AcmeAccount(Timestamped, Base):
    """The platform's account with an ACME directory: its key (JWK) and its URL."""

    __tablename__ = "acme_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    directory: Mapped[str] = mapped_column(String(500), unique=True)
    key: Mapped[str] = mapped_column(Text)  # JSON Web Key, private
    registration: Mapped[str | None] = mapped_column(Text)  # JSON, with the account's URL


class AccessChange(Base):
    """A change that may end live access (a key, a collaborator, an app removed; a key
    added): edge services read these to drop caches and close what is no longer allowed."""

    __tablename__ = "access_changes"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids never reused after pruning

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # "key", "collaborator", "app"
    user_name: Mapped[str | None] = mapped_column(String(40))
    fingerprint: Mapped[str | None] = mapped_column(String(60))
    app_name: Mapped[str | None] = mapped_column(String(48))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


class Deployment(Timestamped, Base):
    """A push of the deploy branch, from queued to a release or an error; its build log is
    kept here once it has finished (a Redis stream carries it while it runs)."""

    __tablename__ = "deployments"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids name log streams: never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(255))
    commit: Mapped[str] = mapped_column(String(64))
    pusher: Mapped[str | None] = mapped_column(String(40))
    buildpack: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)  # why it failed, as the pusher saw it
    release_version: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    log: Mapped[str | None] = mapped_column(Text)


class Release(Timestamped, Base):
    """What runs: a slug (built once), the config and the Procfile's process types. A config
    change makes a release too, reusing the slug."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("app_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(255))
    slug_id: Mapped[str] = mapped_column(String(32))
    slug_host: Mapped[str] = mapped_column(String(255))  # the repo host that keeps it
    slug_size: Mapped[int] = mapped_column(Integer)
    commit: Mapped[str] = mapped_column(String(64))
    buildpack: Mapped[str] = mapped_column(String(100))
    process_types: Mapped[str] = mapped_column(Text)  # JSON object: type -> command
    release_command: Mapped[str | None] = mapped_column(Text)  # Procfile release:/postdeploy:
    # app.json's scripts.postdeploy: on the app's first release only, run once after the
    # release command at its first deploy.
    first_deploy_command: Mapped[str | None] = mapped_column(Text)
    config: Mapped[str] = mapped_column(Text)  # JSON object: the env vars it runs with
    created_by: Mapped[str | None] = mapped_column(String(40))
    deployment_id: Mapped[int | None] = mapped_column(Integer)
    build_seconds: Mapped[float | None] = mapped_column(Float)
    # starting, then how its start went (success, timeout-error...); None: made before
    # releases had one.
    status: Mapped[str | None] = mapped_column(String(20))

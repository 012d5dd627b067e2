"""``/v1``: what users do with the CLI: their account, tokens, keys, apps, collaborators and
environment variables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from slipway.api import addons, domains, keychallenge, repositories, runners
from slipway.api.auth import CurrentCaller, Db
from slipway.api.configs import change_config
from slipway.api.schemas import (
    AppIn,
    AppOut,
    CollaboratorIn,
    CollaboratorOut,
    EnvChange,
    EnvChangedOut,
    EnvOut,
    KeyChallengeOut,
    KeyIn,
    KeyOut,
    NewTokenOut,
    Page,
    T,
    TokenIn,
    TokenOut,
    UserOut,
)
from slipway.config import Settings
from slipway.store import accounts, apps
from slipway.store.apps import Action
from slipway.store.models import ApiToken, App, User
from slipway.store.sshkeys import parse_public_key
from slipway.store.sshsig import verify_signature

router = APIRouter(prefix="/v1")

PageNumber = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number.")]
PerPage = Annotated[int, Query(ge=1, le=100)]


def git_remote(request: Request, app: str) -> str:
    settings = request.app.state.settings
    return f"ssh://git@{settings.effective_public_host}:{settings.ssh_port}/{app}.git"


def web_url(settings: Settings, app: str) -> str:
    port = "" if settings.router_port == 80 else f":{settings.router_port}"
    return f"http://{app}.{settings.apps_domain}{port}/"


def app_out(request: Request, session: Session, app: App, user: User) -> AppOut:
    return AppOut(
        name=app.name,
        owner=apps.owner_of(session, app).name,
        role=apps.role_of(session, app, user) or "",
        created_at=app.created_at,
        git_remote=git_remote(request, app.name),
        url=web_url(request.app.state.settings, app.name),
        deploy_branch=app.deploy_branch,
    )


def paginate(items: list[T], page: int, per_page: int) -> Page[T]:
    """One page of a short list (a user's keys and tokens, an app's collaborators)."""
    start = (page - 1) * per_page
    return Page(
        items=items[start : start + per_page], page=page, per_page=per_page, total=len(items)
    )


def token_out(record: ApiToken) -> TokenOut:
    return TokenOut(
        id=record.id,
        name=record.name,
        prefix=record.prefix,
        created_at=record.created_at,
        last_used_at=record.last_used_at,
        revoked_at=record.revoked_at,
    )


# -- account -------------------------------------------------------------------------------


@router.get("/user", tags=["account"])
def current_user(db: Db, caller: CurrentCaller) -> UserOut:
    with db.session() as session:
        user = caller.user(session)
        return UserOut(name=user.name, is_admin=user.is_admin, created_at=user.created_at)


@router.get("/tokens", tags=["account"])
def list_tokens(
    db: Db, caller: CurrentCaller, page: PageNumber = 1, per_page: PerPage = 50
) -> Page[TokenOut]:
    with db.session() as session:
        tokens = accounts.list_tokens(session, caller.user(session))
        return paginate([token_out(t) for t in tokens], page, per_page)


@router.post("/tokens", status_code=201, tags=["account"])
def create_token(db: Db, caller: CurrentCaller, body: TokenIn) -> NewTokenOut:
    with db.session() as session:
        new = accounts.create_token(session, caller.user(session), body.name)
        return NewTokenOut(token=new.token, **token_out(new.record).model_dump())


@router.delete("/tokens/{token_id}", status_code=204, tags=["account"])
def revoke_token(db: Db, caller: CurrentCaller, token_id: int) -> Response:
    with db.session() as session:
        accounts.revoke_token(session, caller.user(session), token_id)
    return Response(status_code=204)


@router.get("/keys", tags=["account"])
def list_keys(
    db: Db, caller: CurrentCaller, page: PageNumber = 1, per_page: PerPage = 50
) -> Page[KeyOut]:
    with db.session() as session:
        keys = accounts.list_keys(session, caller.user(session))
        return paginate(
            [KeyOut.model_validate(k, from_attributes=True) for k in keys], page, per_page
        )


@router.post("/keys/challenge", tags=["account"])
def key_challenge(request: Request, caller: CurrentCaller) -> KeyChallengeOut:
    """Something to sign with the key you are about to add (see POST /v1/keys)."""
    challenge, expires = keychallenge.issue(request.app.state.internal_secret, caller.id)
    return KeyChallengeOut(
        challenge=challenge,
        namespace=keychallenge.NAMESPACE,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


@router.post("/keys", status_code=201, tags=["account"])
def add_key(request: Request, db: Db, caller: CurrentCaller, body: KeyIn) -> KeyOut:
    """Add a key you prove you hold, by signing a challenge with it: no one can add yours."""
    keychallenge.check(request.app.state.internal_secret, caller.id, body.challenge)
    key_text = parse_public_key(body.public_key).public_key
    verify_signature(body.signature, body.challenge.encode(), keychallenge.NAMESPACE, key_text)
    with db.session() as session:
        key = accounts.add_key(session, caller.user(session), body.public_key, body.name)
        return KeyOut.model_validate(key, from_attributes=True)


@router.delete("/keys/{name}", status_code=204, tags=["account"])
def remove_key(db: Db, caller: CurrentCaller, name: str) -> Response:
    with db.session() as session:
        accounts.remove_key(session, caller.user(session), name)
    return Response(status_code=204)


# -- apps ----------------------------------------------------------------------------------


@router.get("/apps", tags=["apps"])
def list_apps(
    request: Request, db: Db, caller: CurrentCaller, page: PageNumber = 1, per_page: PerPage = 50
) -> Page[AppOut]:
    with db.session() as session:
        user = caller.user(session)
        found, total = apps.apps_of(session, user, (page - 1) * per_page, per_page)
        return Page(
            items=[app_out(request, session, app, user) for app in found],
            page=page,
            per_page=per_page,
            total=total,
        )


@router.post("/apps", status_code=201, tags=["apps"])
def create_app(request: Request, db: Db, caller: CurrentCaller, body: AppIn) -> AppOut:
    with db.session() as session:
        user = caller.user(session)
        app = apps.create_app(session, user, body.name)
        return app_out(request, session, app, user)


@router.get("/apps/{app}", tags=["apps"])
def get_app(request: Request, db: Db, caller: CurrentCaller, app: str) -> AppOut:
    with db.session() as session:
        user = caller.user(session)
        return app_out(request, session, apps.app_for(session, user, app, Action.READ), user)


@router.delete("/apps/{app}", status_code=204, tags=["apps"])
def destroy_app(request: Request, db: Db, caller: CurrentCaller, app: str) -> Response:
    """Destroy the app; its instances stop, and its repository and add-ons are deleted
    right after."""
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.ADMIN)
        runner = runners.runner_of(found)
        resources = addons.resources_of(session, found)
        had_domains = bool(found.domains)
        uid = apps.destroy_app(session, found)
    runners.stop_app(request.app, runner, uid, app)
    if had_domains:
        domains.ask_router(request.app, domains.SYNC_DOMAINS, [])
    addons.destroy_resources(request, resources)
    repositories.delete_repository(request.app, uid)
    return Response(status_code=204)


@router.get("/apps/{app}/collaborators", tags=["apps"])
def list_collaborators(
    db: Db, caller: CurrentCaller, app: str, page: PageNumber = 1, per_page: PerPage = 50
) -> Page[CollaboratorOut]:
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.READ)
        every = [
            CollaboratorOut(user=c.user.name, role=c.role, created_at=c.created_at)
            for c in apps.collaborators(session, found)
        ]
        return paginate(every, page, per_page)


@router.post("/apps/{app}/collaborators", status_code=201, tags=["apps"])
def add_collaborator(
    db: Db, caller: CurrentCaller, app: str, body: CollaboratorIn
) -> CollaboratorOut:
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.ADMIN)
        added = apps.add_collaborator(session, found, body.user)
        return CollaboratorOut(user=added.user.name, role=added.role, created_at=added.created_at)


@router.delete("/apps/{app}/collaborators/{user}", status_code=204, tags=["apps"])
def remove_collaborator(db: Db, caller: CurrentCaller, app: str, user: str) -> Response:
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.ADMIN)
        apps.remove_collaborator(session, found, user)
    return Response(status_code=204)


@router.get("/apps/{app}/env", tags=["apps"])
def get_env(db: Db, caller: CurrentCaller, app: str) -> EnvOut:
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.READ)
        return EnvOut(env=apps.env_of(session, found))


@router.patch("/apps/{app}/env", tags=["apps"])
def change_env(
    request: Request, db: Db, caller: CurrentCaller, app: str, body: EnvChange
) -> EnvChangedOut:
    """Set and unset variables in one step; once the app has a release, a change makes the
    next one (the same slug with the new config), as on Heroku."""
    with db.session() as session:
        user = caller.user(session)
        found = apps.app_for(session, user, app, Action.WRITE)
        change = change_config(request, session, found, user, body.env)
    change.deploy()
    return EnvChangedOut(env=change.env, release_version=change.version)

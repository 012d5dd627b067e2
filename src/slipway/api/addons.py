"""``/v1/apps/APP/addons``: add, list and remove an app's add-ons. Adding one makes its
database (or server) and sets its variables in a new release; removing one unsets them
and drops its data, after the caller confirmed with the app's name."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from slipway.addons.services import DEFAULT_PLANS, KINDS, VARIABLES, AddOnError, Services
from slipway.api.auth import CurrentCaller, Db
from slipway.api.configs import change_config
from slipway.api.errors import ApiError
from slipway.api.schemas import AddOnAddedOut, AddOnIn, AddOnOut
from slipway.store import addons, apps
from slipway.store.apps import Action
from slipway.store.errors import Invalid
from slipway.store.models import AddOn, App

router = APIRouter(prefix="/v1/apps/{app}/addons", tags=["add-ons"])


def services(request: Request) -> Services:
    """Made once per API process, when first needed (it makes its directories)."""
    state = request.app.state
    if getattr(state, "addon_services", None) is None:
        state.addon_services = Services(state.settings)
    found: Services = state.addon_services
    return found


def addon_out(app: App, addon: AddOn) -> AddOnOut:
    return AddOnOut(
        id=addons.public_id(addon),
        kind=addon.kind,
        plan=addon.plan,
        variables=addons.variables_of(addon),
        tunnel=f"{app.name}.{addons.public_id(addon)}",
        created_at=addon.created_at,
    )


@router.get("")
def list_addons(db: Db, caller: CurrentCaller, app: str) -> list[AddOnOut]:
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.READ)
        return [addon_out(found, addon) for addon in addons.of_app(session, found)]


@router.post("", status_code=201)
def add_addon(
    request: Request, db: Db, caller: CurrentCaller, app: str, body: AddOnIn
) -> AddOnAddedOut:
    """Make the add-on, then record it and release its variables in one transaction; if
    that fails, the add-on is removed again (nothing is left half-made)."""
    plans = KINDS.get(body.kind)
    if plans is None:
        raise Invalid(f"unknown add-on {body.kind!r}: use {', '.join(KINDS)}")
    plan = body.plan or DEFAULT_PLANS[body.kind]
    if plan not in plans:
        raise Invalid(f"{body.kind} has no plan {plan!r}: use {', '.join(plans)}")
    with db.session() as session:
        apps.app_for(session, caller.user(session), app, Action.WRITE)
    provider = services(request)
    try:
        made = provider.create(body.kind, plan)
    except AddOnError as error:
        raise ApiError(503, "unavailable", str(error)) from None
    try:
        with db.session() as session:
            user = caller.user(session)
            found = apps.app_for(session, user, app, Action.WRITE)
            env = apps.env_of(session, found)
            variables = [name for name in VARIABLES[body.kind] if name not in env]
            addon = addons.record(
                session, found, body.kind, plan, made.resource, (made.host, made.port)
            )
            public_id = addons.public_id(addon)
            if not variables:  # the usual names are taken: one of its own
                variables = [f"{body.kind.upper()}_{public_id.replace('-', '_').upper()}_URL"]
            addons.set_variables(addon, variables)
            change = change_config(
                request,
                session,
                found,
                user,
                dict.fromkeys(variables, made.url),
                f"Add-on {body.kind} {public_id} added",
            )
            added = addon_out(found, addon)
    except BaseException:
        provider.destroy(body.kind, made.resource)
        raise
    change.deploy()
    return AddOnAddedOut(**added.model_dump(), release_version=change.version)


@router.delete("/{addon_id}", status_code=204)
def remove_addon(
    request: Request,
    db: Db,
    caller: CurrentCaller,
    app: str,
    addon_id: str,
    confirm: Annotated[str | None, Query(description="The app's name: its data goes.")] = None,
) -> Response:
    """Unset its variables (a new release), then drop its data."""
    if confirm != app:
        raise Invalid("removing an add-on deletes its data: confirm with the app's name")
    with db.session() as session:
        user = caller.user(session)
        found = apps.app_for(session, user, app, Action.ADMIN)
        addon = addons.find(session, found, addon_id)
        kind, resource = addon.kind, addon.resource
        variables = addons.variables_of(addon)
        session.delete(addon)
        change = change_config(
            request,
            session,
            found,
            user,
            dict.fromkeys(variables),
            f"Add-on {kind} {addon_id} removed",
        )
    change.deploy()
    if resource is not None:
        try:
            services(request).destroy(kind, resource)
        except AddOnError as error:
            raise ApiError(503, "unavailable", f"the add-on is removed; {error}") from None
    return Response(status_code=204)


def resources_of(session: Session, app: App) -> list[tuple[str, str]]:
    """What the app's add-ons hold (kind, resource), to delete once the app is gone."""
    return [(a.kind, a.resource) for a in addons.of_app(session, app) if a.resource]


def destroy_resources(request: Request, resources: list[tuple[str, str]]) -> None:
    for kind, resource in resources:
        with contextlib.suppress(AddOnError):  # logged; the app is gone already
            services(request).destroy(kind, resource)

"""An app's add-ons as the store keeps them: what they are, where they are reached (the one
place a tunnel may lead), and which config variables they set."""

from __future__ import annotations

import json
import re

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from slipway.store.errors import Invalid, NotFound
from slipway.store.models import AddOn, App

ADDON_ID = re.compile(r"ad-([0-9]{1,9})")
DEFAULT_TUNNEL = "db"  # `APP.db`, or `APP`: the app's first add-on


def public_id(addon: AddOn) -> str:
    return f"ad-{addon.id}"


def parse_id(text: str) -> int:
    match = ADDON_ID.fullmatch(text)
    if match is None:
        raise Invalid(f"invalid add-on id {text!r}: ids look like ad-12 (see `slipway addons`)")
    return int(match[1])


def of_app(session: Session, app: App) -> list[AddOn]:
    return list(session.scalars(select(AddOn).where(AddOn.app_id == app.id).order_by(AddOn.id)))


def find(session: Session, app: App, text: str) -> AddOn:
    addon = session.get(AddOn, parse_id(text))
    if addon is None or addon.app_id != app.id:
        raise NotFound(f"{app.name} has no add-on {text}")
    return addon


def variables_of(addon: AddOn) -> list[str]:
    return list(json.loads(addon.variables)) if addon.variables else []


def set_variables(addon: AddOn, names: list[str]) -> None:
    addon.variables = json.dumps(names)


def record(
    session: Session,
    app: App,
    kind: str,
    plan: str,
    resource: str,
    address: tuple[str, int],
) -> AddOn:
    addon = AddOn(
        app=app,
        kind=kind,
        plan=plan,
        resource=resource,
        host=address[0],
        port=address[1],
    )
    session.add(addon)
    session.flush()
    return addon


_BY_APP = (
    select(AddOn.id, AddOn.host, AddOn.port)
    .join(App)
    .where(App.name == bindparam("app"))
    .order_by(AddOn.id)
)


def destination(db: Session | Connection, app_name: str, which: str) -> tuple[str, int] | None:
    """Where a tunnel to ``which`` (``db``: the first add-on, or an id ``ad-N``) of the app
    leads; None if it has no such add-on."""
    wanted = None if which == DEFAULT_TUNNEL else ADDON_ID.fullmatch(which)
    if which != DEFAULT_TUNNEL and wanted is None:
        return None
    for addon_id, host, port in db.execute(_BY_APP, {"app": app_name}):
        if wanted is None or addon_id == int(wanted[1]):
            return str(host), int(port)
    return None

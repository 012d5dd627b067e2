"""An app's formation: how many instances of each process type run. ``web`` runs one
until scaled, other types none (as on Heroku and Scalingo)."""

from __future__ import annotations

import json
import re

from slipway.store.errors import Invalid
from slipway.store.models import App

MAX_INSTANCES = 20  # per process type
INSTANCE = re.compile(r"([A-Za-z0-9_-]+?)(?:[.-]([0-9]{1,4}))?")  # web, web.1, web-1


def formation_of(app: App, process_types: list[str]) -> dict[str, int]:
    """Instances per process type of the release, scaled or by default."""
    scaled: dict[str, int] = json.loads(app.formation or "{}")
    return {kind: scaled.get(kind, 1 if kind == "web" else 0) for kind in sorted(process_types)}


def scale(app: App, process_types: list[str], changes: dict[str, int]) -> dict[str, int]:
    """Record new counts (all or nothing); the formation now."""
    unknown = sorted(set(changes) - set(process_types))
    if unknown:
        known = ", ".join(sorted(process_types)) or "none: push the app first"
        raise Invalid(f"no process type {', '.join(unknown)} (the release has {known})")
    for kind, count in changes.items():
        if not 0 <= count <= MAX_INSTANCES:
            raise Invalid(f"{kind}={count}: between 0 and {MAX_INSTANCES} instances")
    scaled: dict[str, int] = json.loads(app.formation or "{}")
    scaled.update(changes)
    app.formation = json.dumps(scaled, sort_keys=True)
    return formation_of(app, process_types)


def check_scope(process_types: list[str], scope: list[str]) -> list[str]:
    """What a restart names: process types (``web``) or instances (``web.1``, also
    ``web-1``), as ``web`` / ``web.1``."""
    found = []
    for name in scope:
        match = INSTANCE.fullmatch(name)
        if match is None or match.group(1) not in process_types:
            known = ", ".join(sorted(process_types))
            raise Invalid(f"no process type or instance {name!r} (the release has {known})")
        kind, index = match.groups()
        found.append(f"{kind}.{int(index)}" if index else kind)
    return found

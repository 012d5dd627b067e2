"""Where builds keep their files on a repo host: pushed trees (one directory per
deployment), the apps' build caches, and slugs. App users reach the first two (see
slipway.host.appuser); slugs are the platform's."""

from __future__ import annotations

from pathlib import Path

from slipway.config import Settings
from slipway.host.appuser import apps_root, traversable_dir


def builds_dir(settings: Settings) -> Path:
    return traversable_dir(apps_root(settings.data_dir, settings.apps_dir) / "builds")


def caches_dir(settings: Settings) -> Path:
    return traversable_dir(apps_root(settings.data_dir, settings.apps_dir) / "caches")


def pythons_dir(settings: Settings) -> Path:
    """Interpreters uv downloads for apps: shared by every app, written only by the build
    worker, read by app users (builds and instances)."""
    return apps_root(settings.data_dir, settings.apps_dir) / "pythons"


def slugs_dir(settings: Settings, app_uid: str) -> Path:
    return settings.data_dir / "slugs" / app_uid

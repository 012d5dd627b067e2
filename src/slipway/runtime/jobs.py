"""The jobs a runner takes from its queue (``slipwayd runner``), and what it does when it
starts: bring up every app's current release."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any

from slipway import jobs
from slipway.builder.platform import PlatformApi, PlatformError
from slipway.config import Settings
from slipway.jobs.connection import sync_redis
from slipway.runtime.releases import DeployFailed, Release
from slipway.runtime.runner import Runner
from slipway.wire.deployment_states import ABORTED, SUCCESS

log = logging.getLogger("slipway.runtime")

DEPLOY = "slipway.deploy"
STOP_APP = "slipway.stop_app"
SCALE = "slipway.scale"
RESTART = "slipway.restart"
API_WAIT = 60.0  # seconds a starting runner waits for the API
_runner: Runner | None = None
_lock = threading.Lock()


def runner_queue(host: str = "local") -> str:
    return f"runner-{host}"


def this_runner() -> Runner:
    global _runner
    with _lock:
        if _runner is None:
            settings = Settings()
            if settings.redis_url is None:
                raise RuntimeError("SLIPWAY_REDIS_URL is not set for the runner")
            _runner = Runner(settings, sync_redis(settings.redis_url))
            atexit.register(_runner.shutdown)
        return _runner


@jobs.job(DEPLOY, retry=False)
def deploy(app_uid: str, version: int) -> None:
    """Run release ``version`` of the app, then stop the one it replaces; tell the API
    how it went (the release's deployment ends so)."""
    runner = this_runner()
    api = PlatformApi.from_settings(runner.settings)
    answer = api.release(app_uid, int(version))
    if answer.get("superseded"):
        return  # a newer release is on its way: it will be deployed instead
    _deploy(runner, api, answer)


def _deploy(runner: Runner, api: PlatformApi, answer: dict[str, Any]) -> None:
    release = Release.from_api(answer, runner.settings.data_dir / "slugs")
    try:
        if not release.slug.exists():  # this runner is not on the repo host
            api.download_slug(release.app_uid, answer["slug_id"], release.slug)
        if not runner.deploy(release):
            runner.reroute(release.app_uid)  # it runs (adopted): it may have no route yet
            return
    except DeployFailed as failure:
        api.release_started(release.app_uid, release.version, failure.status, str(failure))
        raise
    except Exception as error:
        reason = f"the runner failed ({type(error).__name__}: {error})"
        api.release_started(release.app_uid, release.version, ABORTED, reason)
        raise
    api.release_started(release.app_uid, release.version, SUCCESS)


@jobs.job(SCALE, retry=False)
def scale(app_uid: str, formation: dict[str, int]) -> None:
    """Run this many instances of each of the app's process types."""
    this_runner().scale(app_uid, {kind: int(count) for kind, count in formation.items()})


@jobs.job(RESTART, retry=False)
def restart(app_uid: str, scope: list[str]) -> None:
    """Replace the app's instances (all, some types, some instances), start before stop."""
    this_runner().restart(app_uid, list(scope))


@jobs.job(STOP_APP, retry=3)
def stop_app(app_uid: str, app: str) -> None:
    """A destroyed app: its instances stop, its host answers 404, its files go."""
    this_runner().stop_app(app_uid, app)


def bring_up_current_releases() -> None:
    """Deploy the current release of every app placed here that does not run yet (the
    runner has just started), once the API answers; a failed one does not hold the others
    back."""
    runner = this_runner()
    api = PlatformApi.from_settings(runner.settings)
    deadline = time.monotonic() + API_WAIT
    while True:
        try:
            current = api.current_releases(runner.settings.runner_name)
            break
        except PlatformError as error:
            if time.monotonic() > deadline:
                log.error("apps not brought up: %s", error)
                return
            time.sleep(0.5)
    for item in current:
        try:
            _deploy(runner, api, api.release(item["app_uid"], int(item["version"])))
        except Exception as error:
            log.error("bringing up %s v%s failed: %s", item["app_uid"], item["version"], error)
    placed_here = {item["app_uid"] for item in current}
    for app_uid in set(runner.apps) - placed_here:
        runner.let_go(app_uid)  # moved to another runner while this one was away

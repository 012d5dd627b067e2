"""The jobs a runner takes from its queue (``slipwayd runner``)."""

from __future__ import annotations

import atexit
import threading

from slipway import jobs
from slipway.builder.platform import PlatformApi
from slipway.config import Settings
from slipway.runtime.runner import Release, Runner

DEPLOY = "slipway.deploy"
STOP_APP = "slipway.stop_app"
_runner: Runner | None = None
_lock = threading.Lock()


def runner_queue(host: str = "local") -> str:
    return f"runner-{host}"


def this_runner() -> Runner:
    global _runner
    with _lock:
        if _runner is None:
            _runner = Runner(Settings())
            atexit.register(_runner.shutdown)
        return _runner


@jobs.job(DEPLOY, retry=False)
def deploy(app_uid: str, version: int) -> None:
    """Run release ``version`` of the app, then stop the one it replaces."""
    runner = this_runner()
    answer = PlatformApi.from_settings(runner.settings).release(app_uid, int(version))
    if answer.get("superseded"):
        return  # a newer release is on its way: it will be deployed instead
    runner.deploy(Release.from_api(answer, runner.settings.data_dir / "slugs"))


@jobs.job(STOP_APP, retry=3)
def stop_app(app_uid: str, app: str) -> None:
    """A destroyed app: its instances stop, its host answers 404, its files go."""
    this_runner().stop_app(app_uid, app)

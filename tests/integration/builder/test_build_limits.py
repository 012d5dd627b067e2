"""One build per app, a build's time limit, and a pusher who goes away: each ends with the
right status, a message, and no lock or directory left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builds_support import SLIPWAY, Platform
from tests.services import wait_until

pytestmark = pytest.mark.timeout(300)
TIMEOUT = 20  # seconds: this platform's build time limit


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(
        tmp_path_factory.mktemp("limits"), settings={"SLIPWAY_BUILD_TIMEOUT": str(TIMEOUT)}
    )
    platform.start()
    yield platform
    platform.stop()


def slow_app(platform: Platform, name: str, seconds: float) -> Path:
    """A Node app whose build prints a line, then stays silent for ``seconds``."""
    app = platform.new_app(name, "node")
    package = json.loads((app / "package.json").read_text())
    package["scripts"]["build"] = (
        f"node -e \"console.log('building slowly'); setTimeout(() => {{}}, {seconds * 1000})\""
    )
    platform.commit(app, {"package.json": json.dumps(package)})
    return app


def start_push(platform: Platform, app: Path) -> subprocess.Popen[str]:
    """A push, once its build has started (its first line of the build script is out)."""
    push = subprocess.Popen(
        ["git", "push", "slipway", "main"],
        cwd=app,
        env=platform.env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert push.stderr is not None
    for line in push.stderr:
        if line.removeprefix("remote:").strip() == "building slowly":
            return push
    raise AssertionError(f"the build never started (status {push.wait()})")


def test_a_push_while_the_app_builds_is_refused_and_the_first_goes_on(
    platform: Platform,
) -> None:
    app = slow_app(platform, "busy", 10)  # long enough for the second push, even when busy
    first = start_push(platform, app)
    other = platform.home / "busy-clone"
    shutil.copytree(app, other)
    platform.commit(other, {"more.txt": "x"})
    second = platform.push(other)
    assert second.returncode != 0
    running = platform.deployments("busy")[-1]["id"]
    assert (
        f"Push rejected: another deployment of busy (#{running}) is building; push again "
        f"once it has finished (slipway deployment-logs {running} -f follows it)"
    ) in second.stderr
    follower = subprocess.Popen(
        [SLIPWAY, "deployment-logs", str(running), "-f"],
        cwd=app,
        env=platform.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert first.wait(60) == 0
    followed, _ = follower.communicate(timeout=30)  # it ends with the build
    assert "       building slowly" in followed
    assert "-----> Released v1" in followed
    platform.wait_for_status("busy", running)
    statuses = [d["status"] for d in platform.deployments("busy")]
    assert statuses == ["aborted", "success"]  # newest first
    assert platform.releases("busy")[0]["version"] == 1


def test_a_pusher_who_disconnects_cancels_the_build(platform: Platform) -> None:
    app = slow_app(platform, "gone", 600)
    push = start_push(platform, app)
    deployment = platform.deployments("gone")[0]["id"]
    os.killpg(push.pid, signal.SIGKILL)  # git and ssh, as a closed laptop would
    push.wait()
    began = time.monotonic()
    assert platform.wait_for_status("gone", deployment, timeout=TIMEOUT) == "aborted"
    assert time.monotonic() - began < TIMEOUT  # cancelled, not timed out
    wait_until(lambda: not any(platform.apps_dir.glob("builds/*")), 10, "the build dir to go")
    # No lock stays behind: the next push builds at once.
    (app / "package.json").write_text(
        json.dumps({"name": "gone", "version": "1.0.0", "scripts": {"start": "node s.js"}})
    )
    (app / "package-lock.json").unlink()
    platform.commit(app, {})
    again = platform.push(app)
    assert again.returncode == 0, again.stderr
    assert "remote: -----> Released v1" in again.stderr


def test_a_build_over_the_time_limit_is_stopped(platform: Platform) -> None:
    app = slow_app(platform, "forever", 600)
    began = time.monotonic()
    pushed = platform.push(app)
    assert pushed.returncode != 0
    assert (
        f"Push rejected: the build took longer than its limit of {TIMEOUT} seconds "
        "(SLIPWAY_BUILD_TIMEOUT)"
    ) in pushed.stderr
    assert time.monotonic() - began < TIMEOUT + 15
    # A silent build still sends a line every 10 s: proxies keep the session open.
    assert "remote:        ... building (" in pushed.stderr
    assert platform.deployments("forever")[0]["status"] == "timeout-error"
    assert platform.releases("forever") == []
    wait_until(lambda: not any(platform.apps_dir.glob("builds/*")), 10, "the build dir to go")

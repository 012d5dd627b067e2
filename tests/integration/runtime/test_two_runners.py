"""Two runners serve one platform as two hosts would: each with its data dir (the second
fetches slugs through the API), both behind the one router. The API places each app on
the live runner with the fewest apps, and moves it when its runner is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from slipway.runtime.state import stop_all
from tests.builds_support import SLIPWAY, SLIPWAYD, Platform, web_app
from tests.services import apps_dir, wait_until

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(tmp_path_factory.mktemp("two-runners"))
    platform.start()
    yield platform
    platform.stop()


def start_second_runner(platform: Platform, data: Path) -> subprocess.Popen[bytes]:
    env = {
        **platform.env,
        "SLIPWAY_DATA_DIR": str(data),
        "SLIPWAY_APPS_DIR": tempfile.mkdtemp(prefix="slipway-test-apps-", dir=apps_dir()),
        "SLIPWAY_RUNNER_NAME": "second",
        "SLIPWAY_ROUTER_DIR": str(platform.data / "router"),
        "SLIPWAY_REDIS_URL": f"unix://{platform.data / 'redis' / 'redis.sock'}",
        "SLIPWAY_API_URL": platform.api_url,
        "SLIPWAY_INTERNAL_SECRET": (platform.data / "internal_secret").read_text().strip(),
    }
    os.chmod(env["SLIPWAY_APPS_DIR"], 0o711)  # noqa: S103 - app users pass through
    data.mkdir(mode=0o700, exist_ok=True)
    log = open(data / "runner.log", "ab")  # noqa: SIM115 - the runner's, for its lifetime
    return subprocess.Popen([*SLIPWAYD, "runner"], env=env, stdout=log, stderr=log)


def hosts(platform: Platform, app: str) -> list[str]:
    return [p["host"] for p in platform.get(f"/v1/apps/{app}/ps")]


def test_apps_are_placed_on_both_runners_and_move_when_one_goes(
    platform: Platform, tmp_path: Path
) -> None:
    second = start_second_runner(platform, tmp_path / "second")
    try:
        wait_until(
            lambda: "second" in platform.run(*SLIPWAYD, "admin", "runners"), 30, "a heartbeat"
        )
        one = platform.new_app("one", None, web_app("one"))
        assert platform.push(one).returncode == 0
        platform.answers("one", "hello one")
        two = platform.new_app("two", None, web_app("two"))
        assert platform.push(two).returncode == 0
        platform.answers("two", "hello two")  # through the router, on the second runner
        assert hosts(platform, "one") == ["local"]
        assert hosts(platform, "two") == ["second"]
        [(on_second,)] = [(p["pid"],) for p in platform.get("/v1/apps/two/ps")]
        slug = next((tmp_path / "second" / "slugs").glob("*/*.tar.gz"))  # fetched
        assert slug.stat().st_size > 0
        request = platform.wait_for_log("two", "GET / 200")  # the router's line, all the same
        assert request["i"] == "web.1"
        # The second runner goes (its apps stay up: a runner that comes back adopts them).
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
        assert "hello two" in platform.visit("two").text
        wait_until(
            lambda: "second" not in platform.run(*SLIPWAYD, "admin", "runners"), 10, "it left"
        )
        # The next deploy of its app goes to the runner still there.
        platform.run(SLIPWAY, "env", "set", "GREETING=moved", "-a", "two")
        platform.answers("two", "moved two")
        assert hosts(platform, "two") == ["local"]
        assert psutil.pid_exists(on_second)  # left behind, until its runner comes back...
        second = start_second_runner(platform, tmp_path / "second")
        wait_until(lambda: not psutil.pid_exists(on_second), 30, "the moved app's old instance")
        assert "moved two" in platform.visit("two").text  # ...and lets go of it
        assert hosts(platform, "two") == ["local"]
    finally:
        if second.poll() is None:
            second.kill()
        stop_all(tmp_path / "second" / "runner" / "state.json", 5)

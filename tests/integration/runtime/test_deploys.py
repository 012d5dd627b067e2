"""A push runs: the runner starts the release behind the router, replaces it on the next
push and on a config change with no failed request, restarts a crashed instance, and keeps
the old release when a new one never listens on its PORT."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.builds_support import SLIPWAY, Platform, server, web_app
from tests.services import wait_until

pytestmark = pytest.mark.timeout(300)
BOOT_TIMEOUT = 5  # seconds: this platform's limit for a web instance to listen


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(
        tmp_path_factory.mktemp("deploys"), settings={"SLIPWAY_BOOT_TIMEOUT": str(BOOT_TIMEOUT)}
    )
    platform.start()
    yield platform
    platform.stop()


def test_a_pushed_app_answers_at_its_host(platform: Platform) -> None:
    app = platform.new_app("runs", "python")
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    assert platform.answers("runs", "hello from python") == "hello from python\n"
    assert platform.visit("nobody").status_code == 404
    # `slipwayd up` tells its operator where the app is.
    assert platform.up.stdout is not None
    url = f"http://runs.localhost:{platform.router_port}/"
    for line in platform.up.stdout:
        if line == f"  runs v1 deployed: {url}\n":
            break


def test_deploys_and_config_changes_switch_with_no_failed_request(platform: Platform) -> None:
    app = platform.new_app("switching", None, web_app("v1"))
    assert platform.push(app).returncode == 0
    platform.answers("switching", "hello v1")
    with load(platform, "switching") as counts:
        platform.commit(app, {"server.py": server("v2")})
        assert platform.push(app).returncode == 0
        platform.answers("switching", "hello v2")
        platform.run(SLIPWAY, "env", "set", "GREETING=bonjour", cwd=app)
        platform.answers("switching", "bonjour v2")
    assert counts["failed"] == 0, counts


@contextlib.contextmanager
def load(platform: Platform, app: str, clients: int = 4) -> Iterator[dict[str, Any]]:
    """Requests to the app without a pause while the block runs; how many succeeded
    (``ok``), failed (``failed``) and the first failures (``errors``)."""
    counts: dict[str, Any] = {"ok": 0, "failed": 0, "errors": []}
    stop = threading.Event()

    def request() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                try:
                    response = client.get(
                        f"http://127.0.0.1:{platform.router_port}/",
                        headers={"Host": f"{app}.localhost"},
                        timeout=30,
                    )
                    failure = None if response.status_code == 200 else str(response.status_code)
                except httpx.HTTPError as error:
                    failure = repr(error)
                counts["ok" if failure is None else "failed"] += 1
                if failure is not None and len(counts["errors"]) < 5:
                    counts["errors"].append(failure)

    threads = [threading.Thread(target=request) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield counts
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def test_a_crashed_instance_restarts(platform: Platform) -> None:
    app = platform.new_app("crashy", None, web_app("v1"))
    assert platform.push(app).returncode == 0
    first = platform.answers("crashy", "hello v1")
    pid = int(first.split("pid=")[1])
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    again = platform.answers("crashy", "hello v1", timeout=30)
    assert int(again.split("pid=")[1]) != pid
    crash = platform.wait_for_log("crashy", "web.1 crashed")
    assert crash["m"] == "web.1 crashed: killed by SIGKILL"
    [listed] = platform.get("/v1/apps/crashy/ps")
    assert (listed["restarts"], listed["last_exit"]) == (1, "killed by SIGKILL")
    assert (crash["s"], crash["i"], crash["v"]) == ("slipway", "web.1", "1")


def test_a_release_that_never_listens_leaves_the_old_one_serving(platform: Platform) -> None:
    app = platform.new_app("stuck", None, web_app("v1"))
    assert platform.push(app).returncode == 0
    platform.answers("stuck", "hello v1")
    platform.commit(app, {"Procfile": "web: sleep 3600 # never listens\n"})
    assert platform.push(app).returncode == 0  # it builds; it cannot start
    latest = platform.deployments("stuck")[0]
    assert platform.wait_for_status("stuck", latest["id"], 30) == "timeout-error"
    assert [r["status"] for r in platform.releases("stuck")] == ["timeout-error", "success"]
    line = platform.wait_for_log("stuck", "Deploy of v2 failed")
    assert f"web.1 did not listen on its PORT within {BOOT_TIMEOUT} s; v1 serves on" in line["m"]
    assert line["s"] == "slipway"
    assert "hello v1" in platform.visit("stuck").text
    wait_until(lambda: not sleeping("sleep 3600 # never listens"), 10, "the stuck one to stop")


def sleeping(command: str) -> bool:
    return any(
        command in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])
    )


def test_the_release_command_runs_before_traffic_moves(platform: Platform) -> None:
    # The web process serves what the release command wrote: it ran first, in the release.
    reader = server("v1").replace(
        "os.environ.get('GREETING', 'hello')", "open('released.txt').read().strip()"
    )
    app = platform.new_app(
        "migrating",
        None,
        {
            "Procfile": "web: python3 server.py\nrelease: echo migrated > released.txt\n",
            "server.py": reader,
        },
    )
    assert platform.push(app).returncode == 0
    platform.answers("migrating", "migrated v1")
    # A failing release command: the new release never starts, the old one serves on.
    platform.commit(
        app,
        {
            "Procfile": "web: python3 server.py\nrelease: exit 3\n",
            "server.py": reader.replace("'v1'", "'v2'"),
        },
    )
    assert platform.push(app).returncode == 0
    latest = platform.deployments("migrating")[0]
    assert platform.wait_for_status("migrating", latest["id"], 30) == "hook-error"
    assert latest["release_version"] == 2
    failed = "Deploy of v2 failed: the release command exited with status 3; v1 serves on"
    platform.wait_for_log("migrating", failed)
    assert "migrated v1" in platform.visit("migrating").text


CHATTY = """\
import sys, time
print(f"booting at {time.time():.3f}")
print("a warning", file=sys.stderr)
print("x" * 25000)
sys.stdout.write("no newline at the end")
sys.stdout.flush()
""" + server("v1")


def test_what_instances_print_reaches_the_apps_log(platform: Platform) -> None:
    app = platform.new_app("chatty", None, web_app("v1"))
    platform.commit(app, {"server.py": CHATTY})
    assert platform.push(app).returncode == 0
    platform.answers("chatty", "hello v1")
    booting = platform.wait_for_log("chatty", "booting at")
    printed = float(booting["m"].split()[-1])
    assert 0 <= int(booting["t"]) / 1000 - printed < 1.0  # in the log within a second
    assert (booting["s"], booting["i"], booting["v"], booting["o"]) == (
        "app",
        "web.1",
        "1",
        "stdout",
    )
    warning = platform.wait_for_log("chatty", "a warning")
    assert warning["o"] == "stderr"
    lines = [line["m"] for line in platform.app_log("chatty") if line["s"] == "app"]
    assert [len(m) for m in lines if set(m) == {"x"}] == [10_000, 10_000, 5_000]  # split
    # What has no newline yet waits for one (or for the instance's end).
    assert "no newline at the end" not in lines
    platform.visit("chatty", "/page?q=1")
    request = platform.wait_for_log("chatty", "GET /page?q=1 ")
    assert (request["s"], request["i"], request["v"]) == ("router", "web.1", "1")
    assert re.fullmatch(r"GET /page\?q=1 200 \d+ bytes \d+ ms web\.1 request_id=\S+", request["m"])
    events = [line["m"] for line in platform.app_log("chatty") if line["s"] == "slipway"]
    assert events[0].startswith("Release v1 created: Deploy ")  # the API's, at the build's end
    assert events[0].endswith(" by alice")
    assert events[1:4] == ["Deploying v1", "web.1 starting: python3 server.py", "web.1 up"]
    assert events[4].startswith("v1 deployed (instances: web.1) at http://chatty.localhost:")


WORKER = "import time; print('working', flush=True); time.sleep(3600)"


def pids(platform: Platform, app: str, visits: int = 8) -> set[int]:
    """The instances the router reached in a few visits: with other traffic sharing them,
    one may be missed, so compare it inside ``wait_until`` only."""
    return {int(platform.visit(app).text.split("pid=")[1]) for _ in range(visits)}


def listed_pids(platform: Platform, app: str, kind: str = "web") -> set[int]:
    """The instances of one type that ``ps`` lists: all of them, unlike ``pids``."""
    return {p["pid"] for p in platform.get(f"/v1/apps/{app}/ps") if p["type"] == kind}


def test_scale_and_restart_switch_with_no_failed_request(platform: Platform) -> None:
    files = {
        "Procfile": f'web: python3 server.py\nworker: python3 -c "{WORKER}"\n',
        "server.py": server("v1"),
    }
    app = platform.new_app("scaly", None, files)
    assert platform.push(app).returncode == 0
    platform.answers("scaly", "hello v1")
    assert platform.get("/v1/apps/scaly/formation") == {"formation": {"web": 1, "worker": 0}}
    with load(platform, "scaly") as counts:
        assert platform.call("PATCH", "/v1/apps/scaly/formation", {"formation": {"web": 3}}) == {
            "formation": {"web": 3, "worker": 0}
        }
        wait_until(lambda: len(pids(platform, "scaly")) == 3, 30, "three web instances")
        listed = platform.get("/v1/apps/scaly/ps")
        assert [(p["name"], p["state"], p["release"], p["host"]) for p in listed] == [
            (f"web.{n}", "up", 1, "local") for n in (1, 2, 3)
        ]
        before = {p["pid"] for p in listed}
        # The router reaches each listed instance (8 visits may miss one: the load shares them).
        wait_until(lambda: pids(platform, "scaly") == before, 10, "the listed instances")
        platform.call("POST", "/v1/apps/scaly/restart", {"scope": ["web"]})

        def three_new() -> bool:
            now = listed_pids(platform, "scaly")
            return len(now) == 3 and not now & before

        wait_until(three_new, 30, "three new web instances")
        after = listed_pids(platform, "scaly")
        wait_until(lambda: pids(platform, "scaly") == after, 10, "the router to reach them only")
        platform.call("PATCH", "/v1/apps/scaly/formation", {"formation": {"web": 1, "worker": 1}})
        wait_until(lambda: len(pids(platform, "scaly", 6)) == 1, 30, "one web instance")
    assert counts["failed"] == 0, counts
    assert counts["ok"] > 20, counts
    platform.wait_for_log("scaly", "working")
    assert platform.wait_for_log("scaly", "working")["i"] == "worker.1"
    events = [line["m"] for line in platform.app_log("scaly") if line["s"] == "slipway"]
    assert "Scaled to web=1 worker=1" in events
    assert "Restarted web.1, web.2, web.3" in events
    refused = platform.call(
        "PATCH", "/v1/apps/scaly/formation", {"formation": {"clock": 1}}, expect=422
    )
    assert refused["message"] == "no process type clock (the release has web, worker)"
    refused = platform.call("POST", "/v1/apps/scaly/restart", {"scope": ["web.x"]}, expect=422)
    assert "no process type or instance 'web.x'" in refused["message"]
    refused = platform.call(
        "PATCH", "/v1/apps/scaly/formation", {"formation": {"web": 21}}, expect=422
    )
    assert refused["message"] == "web=21: between 0 and 20 instances"
    assert platform.get("/v1/apps/scaly/formation") == {"formation": {"web": 1, "worker": 1}}

    def instances() -> list[tuple[str, str, str]]:
        return [(p["name"], p["type"], p["state"]) for p in platform.get("/v1/apps/scaly/ps")]

    expected = [("web.1", "web", "up"), ("worker.1", "worker", "up")]
    wait_until(lambda: instances() == expected, 30, f"ps to show {expected}")


def test_apps_run_again_when_the_platform_restarts(platform: Platform) -> None:
    app = platform.new_app("lasting", None, web_app("v1"))
    assert platform.push(app).returncode == 0
    platform.answers("lasting", "hello v1")
    platform.call("PATCH", "/v1/apps/lasting/formation", {"formation": {"web": 2}})
    wait_until(lambda: len(pids(platform, "lasting")) == 2, 30, "two web instances")
    before = len(platform.app_log("lasting"))
    platform.restart()
    platform.answers("lasting", "hello v1")
    wait_until(lambda: len(pids(platform, "lasting")) == 2, 30, "two web instances again")
    log = platform.app_log("lasting")
    assert len(log) > before  # the log survived, and goes on
    assert any(line["m"] == "Deploying v1" for line in log[before:])


def test_an_upgrade_of_the_platform_keeps_apps_running(platform: Platform) -> None:
    app = platform.new_app("steady", None, web_app("v1"))
    assert platform.push(app).returncode == 0
    pid = int(platform.answers("steady", "hello v1").split("pid=")[1])
    with load(platform, "steady") as counts:
        platform.upgrade()
        platform.wait_for_log("steady", "Runner restarted: web.1 adopted")
    assert counts["failed"] == 0, counts
    assert f"pid={pid}" in platform.visit("steady").text  # the same process serves
    # The new runner supervises it: a crash restarts it, a deploy replaces it.
    os.kill(pid, signal.SIGKILL)
    crash = platform.wait_for_log("steady", "web.1 crashed")
    assert "a previous runner started it" in crash["m"]
    platform.answers("steady", "hello v1", timeout=30)
    platform.commit(app, {"server.py": server("v2")})
    assert platform.push(app).returncode == 0
    platform.answers("steady", "hello v2")

"""A push runs: the runner starts the release behind the router, replaces it on the next
push and on a config change with no failed request, restarts a crashed instance, and keeps
the old release when a new one never listens on its PORT."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.builds_support import SLIPWAY, Platform
from tests.services import wait_until

pytestmark = pytest.mark.timeout(300)
BOOT_TIMEOUT = 5  # seconds: this platform's limit for a web instance to listen

SERVER = """\
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ.get('GREETING', 'hello')} {VERSION} pid={os.getpid()}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello).serve_forever()
"""


def server(version: str) -> str:
    return SERVER.replace("VERSION", repr(version))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(
        tmp_path_factory.mktemp("deploys"), settings={"SLIPWAY_BOOT_TIMEOUT": str(BOOT_TIMEOUT)}
    )
    platform.start()
    yield platform
    platform.stop()


def answers(platform: Platform, app: str, text: str, timeout: float = 60) -> str:
    """Wait until the app answers with ``text`` in its body; the body."""
    found = ""

    def check() -> bool:
        nonlocal found
        try:
            response = platform.visit(app)
        except httpx.HTTPError:
            return False
        found = response.text
        return response.status_code == 200 and text in found

    wait_until(check, timeout, f"{app} to answer {text!r} (last: {found!r})")
    return found


def test_a_pushed_app_answers_at_its_host(platform: Platform) -> None:
    app = platform.new_app("runs", "python")
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    assert answers(platform, "runs", "hello from python") == "hello from python\n"
    assert platform.visit("nobody").status_code == 404


def test_deploys_and_config_changes_switch_with_no_failed_request(platform: Platform) -> None:
    app = platform.new_app(
        "switching", None, {"Procfile": "web: python3 server.py\n", "server.py": server("v1")}
    )
    assert platform.push(app).returncode == 0
    answers(platform, "switching", "hello v1")
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                try:
                    response = client.get(
                        f"http://127.0.0.1:{platform.router_port}/",
                        headers={"Host": "switching.localhost"},
                        timeout=30,
                    )
                    if response.status_code != 200:
                        failures.append(str(response.status_code))
                except httpx.HTTPError as error:
                    failures.append(repr(error))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        platform.commit(app, {"server.py": server("v2")})
        assert platform.push(app).returncode == 0
        answers(platform, "switching", "hello v2")
        platform.run(SLIPWAY, "env", "set", "GREETING=bonjour", cwd=app)
        answers(platform, "switching", "bonjour v2")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []


def test_a_crashed_instance_restarts(platform: Platform) -> None:
    app = platform.new_app(
        "crashy", None, {"Procfile": "web: python3 server.py\n", "server.py": server("v1")}
    )
    assert platform.push(app).returncode == 0
    first = answers(platform, "crashy", "hello v1")
    pid = int(first.split("pid=")[1])
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    again = answers(platform, "crashy", "hello v1", timeout=30)
    assert int(again.split("pid=")[1]) != pid


def test_a_release_that_never_listens_leaves_the_old_one_serving(platform: Platform) -> None:
    app = platform.new_app(
        "stuck", None, {"Procfile": "web: python3 server.py\n", "server.py": server("v1")}
    )
    assert platform.push(app).returncode == 0
    answers(platform, "stuck", "hello v1")
    platform.commit(app, {"Procfile": "web: sleep 3600 # never listens\n"})
    assert platform.push(app).returncode == 0  # it builds; it cannot start
    log = platform.data / "runner.log"
    wait_until(lambda: "did not listen on its PORT" in log.read_text(), 30, "the boot timeout")
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
    answers(platform, "migrating", "migrated v1")
    # A failing release command: the new release never starts, the old one serves on.
    platform.commit(
        app,
        {
            "Procfile": "web: python3 server.py\nrelease: exit 3\n",
            "server.py": reader.replace("'v1'", "'v2'"),
        },
    )
    assert platform.push(app).returncode == 0
    log = platform.data / "runner.log"
    failed = "the release command exited with status 3 (hook-error"
    wait_until(lambda: failed in log.read_text(), 30, "the failed release command")
    assert "migrated v1" in platform.visit("migrating").text

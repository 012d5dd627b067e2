"""The CLI operates a running app, as its owner would: logs (-n, -f, -F, --since, --source,
--json), ps, scale, restart, rollback and open, through a real `slipwayd up`."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from slipway.applog import reader
from slipway.applog.stream import AppLog, Line
from slipway.jobs.connection import sync_redis
from tests import sample_server
from tests.builds_support import SLIPWAY, Platform
from tests.integration.runtime.test_deploys import listed_pids, load, pids
from tests.services import wait_until

pytestmark = pytest.mark.timeout(300)

WORKER = """\
import time
for i in range(10**6):
    print(f"tick {i}", flush=True)
    time.sleep(0.3)
"""


def talker(version: str) -> dict[str, str]:
    return {
        "Procfile": "web: python3 server.py\nworker: python3 worker.py\n",
        "server.py": sample_server.source(version),
        "worker.py": WORKER,
    }


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(tmp_path_factory.mktemp("operating"))
    platform.start()
    app = platform.new_app("talker", None, talker("v1"))
    assert platform.push(app).returncode == 0
    platform.answers("talker", "v1 pid=")
    platform.app = app  # type: ignore[attr-defined]
    yield platform
    platform.stop()


def slipway(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SLIPWAY, *args, "-a", "talker"],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def messages(output: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in output.splitlines()]


def test_logs_shows_the_last_lines_in_herokus_format(platform: Platform) -> None:
    platform.visit("talker", "/?word=alpha&n=5")
    platform.wait_for_log("talker", "alpha 4")
    shown = slipway(platform, "logs", "-n", "3", "-F", "web", "--source", "app")
    assert shown.returncode == 0, shown.stderr
    assert messages(shown.stdout) == ["alpha 2", "alpha 3", "alpha 4"]
    for line in shown.stdout.splitlines():
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 app\[web\.1\]: .*", line)
    assert "\033[" not in shown.stdout  # no colours when piped
    as_json = [
        json.loads(line)
        for line in slipway(platform, "logs", "-n", "2", "--json").stdout.splitlines()
    ]
    assert len(as_json) == 2
    assert set(as_json[0]) == {"id", "time", "source", "instance", "release", "stream", "message"}


def test_logs_filter_by_type_instance_and_source(platform: Platform) -> None:
    assert slipway(platform, "scale", "worker=1").returncode == 0
    platform.wait_for_log("talker", "tick 6")
    platform.visit("talker", "/?word=beta&n=2")
    platform.wait_for_log("talker", "beta 1")
    for filter_ in ("worker", "worker.1", "worker-1"):
        shown = slipway(platform, "logs", "-n", "5", "-F", filter_, "--source", "app").stdout
        assert shown.count("\n") == 5
        assert all(" app[worker.1]: tick " in line for line in shown.splitlines()), shown
    both = slipway(platform, "logs", "-n", "200", "-F", "web|worker", "--source", "app").stdout
    assert "app[web.1]: beta 1" in both and "app[worker.1]: tick" in both
    router = slipway(platform, "logs", "-n", "5", "--source", "router").stdout
    assert "slipway[router]: GET /?word=beta&n=2 200 " in router
    events = slipway(platform, "logs", "-n", "500", "--source", "slipway").stdout
    assert "slipway[runner]: Scaled to web=1 worker=1" in events
    assert "slipway[worker.1]: worker.1 up" in events
    refused = slipway(platform, "logs", "-F", "web.x")
    assert refused.returncode == 1
    assert "not a process type or instance: 'web.x'" in refused.stderr
    refused = slipway(platform, "logs", "--source", "nginx")
    assert refused.returncode == 1
    assert "no log source nginx (app, router, slipway)" in refused.stderr


def test_logs_since_a_time_or_a_duration(platform: Platform) -> None:
    platform.visit("talker", "/?word=old&n=1")
    platform.wait_for_log("talker", "old 0")
    time.sleep(1.1)
    boundary = datetime.now(UTC).isoformat()
    time.sleep(0.1)
    platform.visit("talker", "/?word=fresh&n=1")
    platform.wait_for_log("talker", "fresh 0")
    since = slipway(platform, "logs", "--since", boundary, "-F", "web", "--source", "app")
    assert messages(since.stdout) == ["fresh 0"]
    recent = slipway(platform, "logs", "--since", "10m", "-n", "1000", "-F", "web").stdout
    assert "old 0" in recent and "fresh 0" in recent
    refused = slipway(platform, "logs", "--since", "yesterday")
    assert refused.returncode == 1
    assert "--since 'yesterday': use a duration (30s, 10m, 2h, 1d) or an RFC 3339" in refused.stderr


def blocked_readers(platform: Platform) -> int:
    """Redis clients blocked in a stream read (a follower's XREAD, `up`'s announcements); not
    the workers' fetches, which come and go between queues (the runner of the router's host
    waits on two)."""
    connection = sync_redis(f"unix://{platform.data / 'redis' / 'redis.sock'}")
    try:
        clients = connection.client_list()
        return sum("b" in c["flags"] and c["cmd"] == "xread" for c in clients)
    finally:
        connection.close()


def test_logs_follow_shows_new_lines_within_a_second(platform: Platform) -> None:
    before = blocked_readers(platform)
    follower = subprocess.Popen(
        [SLIPWAY, "logs", "-f", "-n", "1", "-F", "web", "--source", "app", "-a", "talker"],
        env=platform.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        follower.stdout.readline()  # the backlog: it follows now
        time.sleep(0.5)
        printed = time.monotonic()
        platform.visit("talker", "/?word=live&n=3")
        seen = [follower.stdout.readline() for _ in range(3)]
        assert time.monotonic() - printed < 1.0
        assert [line.split(": ", 1)[1].strip() for line in seen] == ["live 0", "live 1", "live 2"]
        wait_until(lambda: blocked_readers(platform) == before + 1, 5, "the API's follow")
    finally:
        follower.terminate()
        follower.wait(10)
    # The API lets go of a follower that went away (its reads block 2 s at most).
    wait_until(lambda: blocked_readers(platform) == before, 10, "the follow to end")


class CuttableProxy:
    """A TCP proxy to the API whose connections a test can cut, as a network drop would."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        for sock in self.open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.open = []

    def close(self) -> None:
        self.cut()
        self.server.close()


def test_a_follower_resumes_after_a_network_drop_from_the_last_line(platform: Platform) -> None:
    proxy = CuttableProxy(platform.http_port)
    follower = subprocess.Popen(
        [SLIPWAY, "logs", "-f", "-n", "1", "-F", "web", "--source", "app", "-a", "talker"],
        env={
            **platform.env,
            "SLIPWAY_API_URL": f"http://127.0.0.1:{proxy.port}",
            "SLIPWAY_API_TOKEN": platform.token,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None and follower.stderr is not None
        follower.stdout.readline()
        platform.visit("talker", "/?word=before&n=2")
        assert [follower.stdout.readline().split(": ", 1)[1] for _ in range(2)] == [
            "before 0\n",
            "before 1\n",
        ]
        proxy.cut()
        platform.visit("talker", "/?word=after&n=3")  # while it is cut off
        assert "connection lost" in follower.stderr.readline()
        seen = [follower.stdout.readline().split(": ", 1)[1] for _ in range(3)]
        assert seen == ["after 0\n", "after 1\n", "after 2\n"]  # nothing again, nothing lost
    finally:
        follower.terminate()
        follower.wait(10)
        proxy.close()


def test_backlog_then_follow_miss_nothing_written_between_them(platform: Platform) -> None:
    connection = sync_redis(f"unix://{platform.data / 'redis' / 'redis.sock'}")
    uid = platform.uid("talker")
    match = reader.Match.parse("burst")
    _, position = reader.backlog(connection, uid, match, 100)
    # A burst lands exactly between the backlog's read and the follow's first read.
    AppLog(connection, 100_000, 7).write(
        uid, [Line(f"between {i}", instance="burst.1") for i in range(500)]
    )
    seen: list[str] = []
    for batch in reader.follow(connection, uid, match, position):
        seen += [entry.message for entry in batch]
        if len(seen) >= 500:
            break
    assert seen == [f"between {i}" for i in range(500)]  # no gap, no duplicate
    connection.close()


def test_ps_scale_and_restart(platform: Platform) -> None:
    scaled = slipway(platform, "scale", "web=2", "worker:1")
    assert scaled.returncode == 0, scaled.stderr
    assert scaled.stdout == "Scaling to web=2 worker=1\n"
    wait_until(lambda: len(pids(platform, "talker")) == 2, 30, "two web instances")
    listed = slipway(platform, "ps").stdout
    for name in ("web.1", "web.2", "worker.1"):
        assert re.search(rf"{re.escape(name)}\s+up\s+v1\s+", listed), listed
    before = listed_pids(platform, "talker")
    assert len(before) == 2, before
    with load(platform, "talker") as counts:
        restarted = slipway(platform, "restart", "web")
        assert restarted.returncode == 0, restarted.stderr
        wait_until(lambda: not pids(platform, "talker") & before, 30, "new web instances")
    assert counts["failed"] == 0, counts
    assert slipway(platform, "scale", "web=1").returncode == 0
    wait_until(lambda: len(pids(platform, "talker", 6)) == 1, 30, "one web instance")
    refused = slipway(platform, "scale", "clock=1")
    assert refused.returncode == 1
    assert "no process type clock (the release has web, worker)" in refused.stderr
    refused = slipway(platform, "scale", "web=two")
    assert refused.returncode == 1
    assert "'web=two': use TYPE=COUNT" in refused.stderr


def test_stats_shows_what_an_instance_allocates(platform: Platform) -> None:
    def web_memory() -> int:
        shown = slipway(platform, "stats", "--json")
        assert shown.returncode == 0, shown.stderr
        [web] = [s for s in json.loads(shown.stdout) if s["name"] == "web.1"]
        return int(web["memory"])

    wait_until(lambda: slipway(platform, "stats", "--json").stdout.count("web.1") == 1, 10, "")
    before = web_memory()
    platform.visit("talker", "/?hold=200")

    def grown_by_200_mb() -> bool:  # a sample is taken every 2 s
        return abs(web_memory() - before - 200 * 1024 * 1024) < 20 * 1024 * 1024

    wait_until(grown_by_200_mb, 10, "the 200 MB the instance holds to show in stats")
    table = slipway(platform, "stats").stdout
    assert re.search(r"web\.1\s+\d+\.\d%\s+2\d\d\.\d MB", table), table
    streamed = subprocess.Popen(
        [SLIPWAY, "stats", "--stream", "-a", "talker"],
        env=platform.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert streamed.stdout is not None
    lines = [streamed.stdout.readline() for _ in range(2)]  # piped: a line per sample
    streamed.terminate()
    streamed.wait(10)
    assert all(line.startswith(("name=web.1 cpu=", "name=worker.1 cpu=")) for line in lines)


def test_rollback_serves_the_old_version_and_open_prints_the_url(platform: Platform) -> None:
    app = platform.app  # type: ignore[attr-defined]
    platform.commit(app, {"server.py": sample_server.source("v2")})
    assert platform.push(app).returncode == 0
    platform.answers("talker", "v2 pid=")
    version = platform.releases("talker")[0]["version"]
    rolled = slipway(platform, "rollback", "v1")
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout.startswith(f"Rolling back to v1 as v{version + 1}")
    platform.answers("talker", "v1 pid=")
    assert platform.releases("talker")[0]["description"] == "Rollback to v1"
    wait_until(lambda: platform.releases("talker")[0]["status"] == "success", 30, "its start")
    listed = slipway(platform, "releases").stdout
    assert re.search(rf"v{version + 1}\s+Rollback to v1\s+success\s+alice", listed), listed
    refused = slipway(platform, "rollback", "v1000")
    assert refused.returncode == 1 and "has no release v1000" in refused.stderr
    refused = slipway(platform, "rollback", "latest")
    assert refused.returncode == 1 and "name a release as v3" in refused.stderr
    opened = slipway(platform, "open")
    assert opened.stdout == f"http://talker.localhost:{platform.router_port}/\n"


def test_completion_knows_process_types_and_instances(platform: Platform) -> None:
    def complete(*words: str) -> list[str]:
        line = ["slipway", *words]
        done = subprocess.run(
            [SLIPWAY],
            env={
                **platform.env,
                "_SLIPWAY_COMPLETE": "complete_bash",
                "COMP_WORDS": " ".join(line),
                "COMP_CWORD": str(len(line) - 1),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout.split()

    wait_until(
        lambda: {p["name"] for p in platform.get("/v1/apps/talker/ps")} == {"web.1", "worker.1"},
        30,
        "web.1 and worker.1",
    )
    assert complete("scale", "-a", "talker", "w") == ["web=", "worker="]
    assert complete("restart", "-a", "talker", "wo") == ["worker", "worker.1"]
    assert complete("logs", "-a", "talker", "-F", "we") == ["web", "web.1"]

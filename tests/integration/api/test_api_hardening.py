"""The attacks of the API's security review, replayed against a real `slipwayd api` process:
endless headers, slow or silent connections, too many connections, a spoofed
X-Forwarded-For, a short internal secret, and the public metrics and schema."""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
import psutil
import pytest
from fastapi import Request
from pydantic import ValidationError
from uvicorn.server import ServerState

from slipway.api.auth import edge_service
from slipway.api.errors import ApiError
from slipway.api.run import uvicorn_config
from slipway.config import Settings
from slipway.host.ports import free_port
from tests.control_support import INTERNAL_SECRET
from tests.services import stop_process, wait_until

SLIPWAYD = Path(sys.executable).parent / "slipwayd"
MB = 1024 * 1024


@dataclass
class Api:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def rss(self) -> int:
        """The memory of the process tree: the manager and its workers."""
        manager = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [manager, *manager.children()])

    def log_line(self, marker: str) -> str:
        """The API's log line holding `marker`, once written."""
        found: list[str] = []

        def written() -> bool:
            found[:] = [line for line in self.log.read_text().splitlines() if marker in line]
            return bool(found)

        wait_until(written, 15, f"a log line with {marker}", self.process)
        return found[0]


def slipwayd_env(data_dir: Path, port: int, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLIPWAY_")}
    env.update(SLIPWAY_DATA_DIR=str(data_dir), SLIPWAY_HTTP_PORT=str(port))
    env.update({f"SLIPWAY_{name.upper()}": value for name, value in settings.items()})
    return env


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def slipwayd_api(directory: Path, **settings: str) -> Iterator[Api]:
    """`slipwayd api` with the internal secret and `settings` (as SLIPWAY_* variables)."""
    port = free_port()
    log = directory / "api.log"
    env = slipwayd_env(directory / "data", port, internal_secret=INTERNAL_SECRET, **settings)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(SLIPWAYD), "api"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    api = Api(process, port, log)
    try:
        wait_until(lambda: healthy(api.url), 60, "slipwayd api", process)
        yield api
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API with its default settings."""
    with slipwayd_api(tmp_path_factory.mktemp("api")) as server:
        yield server


def exchange(api: Api, request: bytes) -> bytes:
    """Send `request` on a new connection; everything the API answers until it closes."""
    with api.connect() as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, leaving the connection open."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def get(target: str, headers: bytes = b"") -> bytes:
    return b"GET " + target.encode() + b" HTTP/1.1\r\nHost: api\r\n" + headers + b"\r\n"


# --- 1. Request heads are bounded: 414 past 8 KiB of URL, 431 past 64 KiB of head.


def test_request_line_and_headers_have_a_size_limit(api: Api) -> None:
    close = b"Connection: close\r\n"
    assert exchange(api, get("/healthz?pad=" + "a" * 8000, close)).startswith(b"HTTP/1.1 200")
    for size in (8200, 100_000):  # the second: more than a head, in one read
        too_long = exchange(api, get("/healthz?pad=" + "a" * size, close))
        assert too_long.startswith(b"HTTP/1.1 414 ") and too_long.count(b"HTTP/1.1") == 1
        assert b"connection: close\r\n" in too_long

    def padding(size: int) -> bytes:  # headers of 1 KiB each
        return b"".join(b"X-Pad-%04d: %s\r\n" % (i, b"p" * 1008) for i in range(size // 1024))

    assert exchange(api, get("/healthz", close + padding(60 * 1024))).startswith(b"HTTP/1.1 200")
    assert exchange(api, get("/healthz", close + padding(66 * 1024))).startswith(b"HTTP/1.1 431")
    one_big = b"X-Big: " + b"b" * 70 * 1024 + b"\r\n"
    assert exchange(api, get("/healthz", one_big)).startswith(b"HTTP/1.1 431")


class RecordingTransport(asyncio.Transport):
    """What the protocol writes, refusing a write after the end of output, as asyncio does."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.ended = self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.ended and not self.closing, "written after the end"
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.ended = True

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(name)


@pytest.mark.parametrize(
    ("request_head", "status"),
    [(get("/" + "u" * 100_000), b"414"), (get("/", b"X-Big: " + b"h" * 100_000), b"431")],
)
async def test_a_read_holding_more_than_a_head_gets_one_answer(
    request_head: bytes, status: bytes
) -> None:
    """A single read can hold more than MAX_HEAD (loopback rarely makes one that big)."""

    async def unreachable(scope: object, receive: object, send: object) -> None:
        raise AssertionError("the app must not be called")

    config = uvicorn_config(Settings(), unreachable)
    config.load()
    protocol = config.http_protocol_class(  # type: ignore[call-arg]
        config=config, server_state=ServerState(), app_state={}
    )
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request_head)
    protocol.data_received(b"more")  # dropped: the answer is given
    assert transport.written.startswith(b"HTTP/1.1 " + status)
    assert transport.written.count(b"HTTP/1.1") == 1 and transport.ended
    protocol.connection_lost(None)


def test_a_flood_of_headers_is_answered_431_and_memory_stays_flat(api: Api) -> None:
    """The review's attack: 4 connections sending 64 MB of headers each (it took the API
    from 116 MB to 373 MB)."""
    before = api.rss()
    peak = before
    answers: list[bytes] = []

    def flood() -> None:
        with api.connect() as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: api\r\nX-Flood: ")
            sent, chunk = 0, b"f" * 65536
            selector = selectors.DefaultSelector()
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            try:
                while sent < 64 * MB:
                    events = selector.select(30)
                    assert events, "the API neither reads nor answers"
                    if events[0][1] & selectors.EVENT_READ:
                        break  # answered: stop sending, read the answer
                    sent += sock.send(chunk)
            finally:
                selector.close()
            answers.append(sock.recv(65536))

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, api.rss())
        time.sleep(0.02)
    assert len(answers) == 4
    assert all(answer.startswith(b"HTTP/1.1 431 ") for answer in answers), answers
    assert peak - before < 20 * MB, f"RSS {before / MB:.0f} MB -> {peak / MB:.0f} MB"
    assert healthy(api.url)


# --- 2. Deadlines: 10 s to send a request head, 5 s idle between kept-alive requests.


def watch_until_closed(
    sockets: dict[socket.socket, float], trickle: set[socket.socket], limit: float
) -> dict[socket.socket, tuple[float, bytes]]:
    """For each socket, seconds from its start time to its close by the API and what the
    API sent; the `trickle` ones send one more header byte each second meanwhile."""
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    received = dict.fromkeys(sockets, b"")
    closed: dict[socket.socket, tuple[float, bytes]] = {}
    deadline = time.monotonic() + limit
    next_trickle = time.monotonic() + 1
    try:
        while len(closed) < len(sockets) and time.monotonic() < deadline:
            for key, _ in selector.select(0.2):
                sock = cast(socket.socket, key.fileobj)
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                received[sock] += data
                if not data:
                    closed[sock] = (time.monotonic() - sockets[sock], received[sock])
                    selector.unregister(sock)
            if time.monotonic() >= next_trickle:
                next_trickle += 1
                for sock in trickle - closed.keys():
                    with contextlib.suppress(OSError):  # closed meanwhile: a read tells when
                        sock.send(b"x")
    finally:
        selector.close()
    return closed


def test_slow_and_silent_connections_are_closed_after_the_header_timeout(api: Api) -> None:
    """The review's attack: 200 connections trickling headers and 200 silent ones were all
    still open after 50 s."""
    slow: list[socket.socket] = []
    silent: list[socket.socket] = []
    opened: dict[socket.socket, float] = {}
    try:
        for _ in range(200):
            for group in (slow, silent):
                sock = api.connect()
                opened[sock] = time.monotonic()
                group.append(sock)
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: api\r\nX-Slow: ")
        assert healthy(api.url)  # the API still serves meanwhile
        closed = watch_until_closed(opened, set(slow), limit=40)
    finally:
        for sock in opened:
            sock.close()
    assert len(closed) == 400, f"{400 - len(closed)} connections still open after 40 s"
    for sock, (after, answer) in closed.items():
        assert 9.5 < after < 35, after  # the 10 s deadline, from connecting
        if sock in slow:
            assert answer.startswith(b"HTTP/1.1 408 "), answer
        else:
            assert answer == b""


def test_a_kept_alive_connection_is_closed_when_idle_or_when_its_next_head_trickles(
    api: Api,
) -> None:
    request = get("/healthz")
    idle, trickling = api.connect(), api.connect()
    try:
        for sock in (idle, trickling):
            sock.sendall(request)
            assert read_response(sock).startswith(b"HTTP/1.1 200")  # and it stays open
        answered = time.monotonic()
        trickling.sendall(request[:10])  # the next request begins, then trickles
        closed = watch_until_closed({idle: answered, trickling: answered}, {trickling}, 40)
    finally:
        idle.close()
        trickling.close()
    assert 4.5 < closed[idle][0] < 20 and closed[idle][1] == b""  # the 5 s keep-alive
    assert 9.5 < closed[trickling][0] < 35  # 10 s from the next request's first byte
    assert closed[trickling][1].startswith(b"HTTP/1.1 408 ")


# --- 2. The connection cap.


def test_connections_beyond_the_cap_are_answered_503(tmp_path: Path) -> None:
    settings = {"api_max_connections": "10", "api_header_timeout": "120", "api_workers": "1"}
    with slipwayd_api(tmp_path, **settings) as api:
        idle = [api.connect() for _ in range(9)]
        try:
            assert httpx.get(f"{api.url}/healthz", timeout=30).status_code == 200  # the 10th
            idle.append(api.connect())  # accepted before the next one: connections are FIFO
            refused = httpx.get(f"{api.url}/healthz", timeout=30)
            assert (refused.status_code, refused.text) == (503, "Too many connections")
            assert refused.headers["connection"] == "close"
        finally:
            for sock in idle[:5]:
                sock.close()
        try:
            wait_until(lambda: healthy(api.url), 15, "a free connection slot", api.process)
        finally:
            for sock in idle[5:]:
                sock.close()


def test_workers_share_the_cap_rather_than_multiply_it(tmp_path: Path) -> None:
    settings = {"api_max_connections": "4", "api_header_timeout": "120", "api_workers": "2"}
    with slipwayd_api(tmp_path, **settings) as api:
        held = [api.connect() for _ in range(8)]
        try:
            for sock in held:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n")
            statuses = [sock.recv(65536).split(b" ")[1] for sock in held]
        finally:
            for sock in held:
                sock.close()
    assert statuses.count(b"200") <= 4  # 2 per worker
    assert statuses.count(b"503") >= 4


# --- 4. X-Forwarded-For only from the configured proxies.


def test_forwarded_for_is_believed_only_from_trusted_proxies(api: Api, tmp_path: Path) -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    marker = uuid.uuid4().hex
    httpx.get(f"{api.url}/healthz?probe={marker}", headers=spoofed, timeout=30)
    line = api.log_line(marker)
    assert "127.0.0.1:" in line and "203.0.113.9" not in line

    with slipwayd_api(tmp_path, api_trusted_proxies="10.0.0.0/8, 127.0.0.1") as proxied:
        httpx.get(f"{proxied.url}/healthz?probe={marker}", headers=spoofed, timeout=30)
        assert "203.0.113.9" in proxied.log_line(marker)


def test_trusted_proxies_are_addresses_or_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_API_TRUSTED_PROXIES", " 10.0.0.0/8 ,::1")
    assert Settings().api_trusted_proxies == ["10.0.0.0/8", "::1"]
    monkeypatch.setenv("SLIPWAY_API_TRUSTED_PROXIES", "proxy.internal")
    with pytest.raises(ValidationError, match="api_trusted_proxies"):
        Settings()


def test_the_http_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HEADER_TIMEOUT", "KEEP_ALIVE_TIMEOUT", "MAX_CONNECTIONS", "TRUSTED_PROXIES"):
        monkeypatch.delenv(f"SLIPWAY_API_{name}", raising=False)
    monkeypatch.delenv("SLIPWAY_API_DOCS", raising=False)
    settings = Settings()
    assert (settings.api_header_timeout, settings.api_keep_alive_timeout) == (10, 5)
    assert (settings.api_max_connections, settings.api_trusted_proxies) == (1000, [])
    assert settings.api_docs is False


# --- 5. /metrics takes the internal secret; the schema and docs are off unless enabled.


def test_metrics_need_the_secret_and_docs_are_off_by_default(api: Api) -> None:
    with httpx.Client(base_url=api.url, timeout=30) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert client.get(path).status_code == 404, path
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer wrong"}):
            assert client.get("/metrics", headers=headers).status_code == 401, headers
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {INTERNAL_SECRET}"})
    assert metrics.status_code == 200
    assert 'slipway_api_requests_total{method="GET",route="/healthz",status="200"}' in metrics.text


def test_the_schema_and_docs_are_served_when_enabled(tmp_path: Path) -> None:
    with slipwayd_api(tmp_path, api_docs="true") as api:
        spec = httpx.get(f"{api.url}/openapi.json", timeout=30).json()
        assert "/internal/authorize" in spec["paths"] and "/metrics" not in spec["paths"]
        assert httpx.get(f"{api.url}/docs", timeout=30).status_code == 200


# --- 3. The internal secret: never empty or short, created whole, the same for everyone.


@pytest.mark.parametrize("secret", ["", "short-secret", "x" * 31])
def test_the_api_refuses_a_short_secret_variable(tmp_path: Path, secret: str) -> None:
    env = slipwayd_env(tmp_path / "data", free_port(), internal_secret=secret)
    result = subprocess.run(
        [str(SLIPWAYD), "api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert f"SLIPWAY_INTERNAL_SECRET holds {len(secret)} bytes" in result.stderr, result.stderr
    assert "at least 32" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("content", ["", "\n", "truncated-secr"])
def test_the_api_refuses_an_empty_or_truncated_secret_file(tmp_path: Path, content: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "internal_secret").write_text(content)
    result = subprocess.run(
        [str(SLIPWAYD), "api"],
        env=slipwayd_env(data, free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{data / 'internal_secret'} holds {len(content.strip())} bytes" in result.stderr


def test_empty_credentials_are_refused(api: Api) -> None:
    body = b'{"user": "alice", "app": "shop", "action": "push"}'
    for authorization in (b"", b"Authorization: Bearer\r\n", b"Authorization: Bearer \r\n"):
        request = (
            b"POST /internal/authorize HTTP/1.1\r\nHost: api\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (len(body), authorization, body)
        )
        assert exchange(api, request).startswith(b"HTTP/1.1 401 "), authorization
    # Even were the configured secret empty (startup refuses that), an empty one is no match.
    state = SimpleNamespace(internal_secret="")
    empty = cast(Request, SimpleNamespace(app=SimpleNamespace(state=state)))
    with pytest.raises(ApiError):
        asyncio.run(edge_service(empty, None))


def test_processes_starting_together_share_one_secret_never_seen_half_written(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    path = data / "internal_secret"
    go = tmp_path / "go"
    # Each process imports Slipway, says it is ready, and waits for the others.
    code = (
        "import sys, time; from pathlib import Path; from slipway.config import Settings; "
        "settings = Settings(data_dir=Path(sys.argv[1])); Path(sys.argv[2]).touch(); "
        "go = Path(sys.argv[3])\n"
        "while not go.exists(): time.sleep(0.001)\n"
        "print(settings.effective_internal_secret())"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLIPWAY_")}
    ready = [tmp_path / f"ready-{i}" for i in range(8)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(data), str(flag), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    try:
        wait_until(lambda: all(flag.exists() for flag in ready), 60, "8 processes ready")
        go.touch()
        seen: set[str] = set()
        while any(process.poll() is None for process in processes):
            with contextlib.suppress(FileNotFoundError):
                seen.add(path.read_text())
        secrets = {process.communicate(timeout=60)[0].strip() for process in processes}
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert all(process.returncode == 0 for process in processes)
    assert len(secrets) == 1
    secret = secrets.pop()
    assert len(secret) >= 32 and path.read_text() == secret + "\n"
    assert seen <= {secret + "\n"}, seen  # a reader saw the file whole or not at all
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [child.name for child in data.iterdir()] == ["internal_secret"]  # no leftovers

"""An API server and a gateway in front of it, per test module; the store emptied per test."""

from __future__ import annotations

import shutil
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.gateway.limits import ConnectionLimits
from tests.control_support import ApiServer, empty_database, serve_api
from tests.gateway_support import RecordingUpstream, RunningGateway, serve_gateway


@pytest.fixture(scope="module")
def gateway_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("gateway-api")
    with serve_api(f"sqlite:///{tmp / 'slipway.db'}", tmp / "api-data") as server:
        yield server


@pytest.fixture(scope="module")
def running_gateway(
    gateway_api: ApiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    # Tests connect hundreds of times a minute from one address: far above the default rate.
    limits = ConnectionLimits(rate=1000, burst=1000, per_source=1000, start=1000, full=2000)
    with serve_gateway(
        gateway_api, tmp_path_factory.mktemp("gateway") / "data", limits=limits
    ) as gateway:
        yield gateway


@pytest.fixture
def api(gateway_api: ApiServer) -> ApiServer:
    empty_database(gateway_api.database)
    return gateway_api


@pytest.fixture
def gateway(running_gateway: RunningGateway, api: ApiServer) -> RunningGateway:
    """The gateway, with no repositories on disk and an empty store."""
    shutil.rmtree(running_gateway.repos, ignore_errors=True)
    running_gateway.gateway.control._keys.clear()
    return running_gateway


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small git repository to push."""
    repo = tmp_path / "source"
    repo.mkdir()
    commands = [
        ["init", "-q", "--initial-branch=main"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first"],
    ]
    (repo / "README").write_text("hello\n")
    (repo / "app.py").write_text("print('hi')\n" * 100)
    for command in commands:
        subprocess.run(["git", *command], cwd=repo, check=True)
    return repo


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture(scope="module")
def echo_database() -> Iterator[tuple[str, int]]:
    """A stand-in database for tunnels: a TCP echo server."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    yield str(host), int(port)
    server.shutdown()


@pytest.fixture
def recorder(gateway: RunningGateway) -> Iterator[RecordingUpstream]:
    """Replaces git with a recorder: shows exactly what reaches an upstream."""
    recording = RecordingUpstream()
    real = gateway.gateway._local
    gateway.gateway._local = recording  # type: ignore[assignment]
    try:
        yield recording
    finally:
        gateway.gateway._local = real

"""The SSH gateway under test: served from a thread of this process against a real API
server, driven with the real OpenSSH client and real git."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from slipway.gateway.commands import GitCommand
from slipway.gateway.config import GatewayConfig
from slipway.gateway.server import Gateway
from slipway.gateway.upstreams import Exit, Output, Sent, pump
from slipway.graceful import listen
from slipway.host.ports import free_port
from slipway.store import accounts, apps
from tests.control_support import INTERNAL_SECRET, ApiServer
from tests.keys import generate
from tests.services import strict_ssh


@dataclass
class User:
    name: str
    key: Path  # private key; its .pub is registered
    token: str


def add_user(api: ApiServer, name: str, kind: str = "ed25519") -> User:
    key = generate(kind)
    with api.database.session() as session:
        user = accounts.create_user(session, name)
        accounts.add_key(session, user, Path(f"{key}.pub").read_text(), "key")
        token = accounts.create_token(session, user).token
    return User(name, key, token)


def add_app(api: ApiServer, owner: str, name: str, *collaborators: str) -> str:
    """Create the app; returns its uid (which names its repository)."""
    with api.database.session() as session:
        app = apps.create_app(session, accounts.user_named(session, owner), name)
        for collaborator in collaborators:
            apps.add_collaborator(session, app, collaborator)
        return app.uid


def with_database(api: ApiServer, owner: str, app: str, address: tuple[str, int]) -> None:
    """Record a database for the app, where tunnels to it lead."""
    with api.database.session() as session:
        found = apps.app_for(session, accounts.user_named(session, owner), app, apps.Action.READ)
        apps.add_database(session, found, "postgresql", *address)


@dataclass
class RunningGateway:
    gateway: Gateway
    port: int
    data_dir: Path
    loop: asyncio.AbstractEventLoop
    known_hosts: Path

    def ssh(
        self, key: Path, *args: str, user: str = "git", options: tuple[str, ...] = ()
    ) -> list[str]:
        return strict_ssh(self.port, key, self.known_hosts, user, *args, options=options)

    def connect(self, key: Path) -> AbstractAsyncContextManager[asyncssh.SSHClientConnection]:
        """An asyncssh client connection as ``git`` (``async with gateway.connect(key)``)."""
        return asyncssh.connect(**self.client_options(key))

    async def open(self, key: Path) -> asyncssh.SSHClientConnection:
        """The same, for a connection the caller closes itself."""
        return await asyncssh.connect(**self.client_options(key))

    def client_options(self, key: Path) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "username": "git",
            "client_keys": [str(key)],
            "known_hosts": str(self.known_hosts),
            "agent_path": None,
        }

    def run_ssh(
        self, key: Path, *args: str, timeout: float = 30, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.ssh(key, *args, **kwargs),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def url(self, repository: str) -> str:
        return f"ssh://git@127.0.0.1:{self.port}/{repository}"

    def git_env(self, key: Path) -> dict[str, str]:
        command = " ".join(self.ssh(key)[:-1])  # everything but the destination
        return {
            **os.environ,
            "GIT_SSH_COMMAND": command,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.data_dir.parent),
        }

    def git(
        self, key: Path, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            env={**self.git_env(key), **(env or {})},
        )

    @property
    def repos(self) -> Path:
        return self.data_dir / "repos"

    def repository(self, uid: str) -> Path:
        return self.repos / f"{uid}.git"

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)


@contextmanager
def serve_gateway(api: ApiServer, data_dir: Path, **options: Any) -> Iterator[RunningGateway]:
    config = GatewayConfig(
        api_url=api.url, internal_secret=INTERNAL_SECRET, data_dir=data_dir, **options
    )
    port = free_port()
    listener = listen("127.0.0.1", port)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Gateway] = {}

    async def main() -> None:
        gateway = Gateway(config)
        holder["gateway"] = gateway
        started = asyncio.Event()
        task = asyncio.create_task(gateway.serve(listener, started))
        await started.wait()
        ready.set()
        try:
            await task
        except asyncio.CancelledError:
            await gateway.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the gateway did not start")
    host_key = (config.host_key_dir / "ssh_host_ed25519_key.pub").read_text().split()
    known_hosts = data_dir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    running = RunningGateway(holder["gateway"], port, data_dir, loop, known_hosts)
    try:
        yield running
    finally:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(10)
        listener.close()


@dataclass
class Recorded:
    command: GitCommand
    git_protocol: str | None
    killed: bool = False


@dataclass
class RecordingUpstream:
    """Stands in for git: records what reaches it, echoes stdin, exits with a set status."""

    seen: list[Recorded] = field(default_factory=list)
    exit_status: int = 0
    silent_for: float = 0.0  # seconds to wait, silent, before answering

    async def start(self, command: GitCommand, repository: str, git_protocol: str | None) -> Any:
        record = Recorded(command, git_protocol)
        self.seen.append(record)
        return _Echo(self, record)

    async def close(self) -> None:
        pass


class _Echo:
    def __init__(self, upstream: RecordingUpstream, record: Recorded) -> None:
        self.upstream = upstream
        self.record = record
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.done = asyncio.Event()
        self.greeted = False

    async def write(self, data: bytes) -> None:
        await self.queue.put(data)

    def write_eof(self) -> None:
        self.queue.put_nowait(b"")

    async def _read(self, size: int) -> bytes:
        if not self.greeted:
            self.greeted = True
            await asyncio.sleep(self.upstream.silent_for)
            return f"{self.record.command.verb} {self.record.command.app}\n".encode()
        data = await self.queue.get()
        if not data:
            self.done.set()
        return data

    async def send_output(self, stdout: Output, stderr: Output, sent: Sent) -> None:
        await pump(self._read, stdout, sent)

    async def wait(self) -> Exit:
        await self.done.wait()
        return Exit(
            status=None if self.record.killed else self.upstream.exit_status,
            signal="KILL" if self.record.killed else None,
        )

    def kill(self) -> None:
        self.record.killed = True
        self.done.set()
        self.queue.put_nowait(b"")

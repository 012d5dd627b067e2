"""Revocation reaches live connections within a second: a removed key ends its connections
(multiplexed ones too) and its cached login; a removed collaborator loses open sessions and
tunnels; a key added after a refusal works at once."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import asyncssh
import httpx
import pytest

from tests.control_support import ApiServer
from tests.gateway_support import (
    RunningGateway,
    User,
    add_app,
    add_user,
    with_database,
)
from tests.keys import generate, proven_key
from tests.services import wait_until

WITHIN = 1.0  # seconds for a revocation to reach the gateway's connections


def api_as(api: ApiServer, user: User) -> httpx.Client:
    return api.client(user.token)


@pytest.fixture
def pushed(gateway: RunningGateway, api: ApiServer, source: Path) -> User:
    """alice, with the app shop pushed and bob as a collaborator."""
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    pushed = gateway.git(alice.key, "push", "-q", gateway.url("shop.git"), "main", cwd=source)
    assert pushed.returncode == 0, pushed.stderr
    return alice


class Master:
    """An OpenSSH ControlMaster connection: git commands share it, as with ControlPersist."""

    def __init__(self, gateway: RunningGateway, key: Path, directory: Path) -> None:
        self.gateway = gateway
        self.socket = directory / "mux"
        self.key = key
        argv = gateway.ssh(key, options=("-M", "-S", str(self.socket), "-N"))
        self.process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        wait_until(self.socket.exists, 15, "the master connection", self.process)

    def git(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        through = " ".join(
            self.gateway.ssh(self.key, options=("-S", str(self.socket), "-o", "ControlMaster=no"))[
                :-1
            ]
        )
        return self.gateway.git(self.key, *args, cwd=cwd, env={"GIT_SSH_COMMAND": through})

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def test_a_removed_key_ends_its_multiplexed_connection(
    gateway: RunningGateway, api: ApiServer, pushed: User, tmp_path: Path
) -> None:
    alice = pushed
    master = Master(gateway, alice.key, tmp_path)
    try:
        listed = master.git("ls-remote", gateway.url("shop.git"))
        assert listed.returncode == 0 and "refs/heads/main" in listed.stdout, listed.stderr
        removed = time.monotonic()
        api_as(api, alice).delete("/v1/keys/key").raise_for_status()
        master.process.wait(timeout=10)
        assert time.monotonic() - removed < WITHIN + 0.5
        assert master.process.stderr is not None
        assert "your SSH key was removed" in master.process.stderr.read()
        again = master.git("ls-remote", gateway.url("shop.git"))
        assert again.returncode != 0
    finally:
        master.close()


def test_a_removed_key_cannot_log_in_again(
    gateway: RunningGateway, api: ApiServer, pushed: User
) -> None:
    alice = pushed
    assert gateway.run_ssh(alice.key, "git-upload-pack shop.git").returncode != 255
    api_as(api, alice).delete("/v1/keys/key").raise_for_status()
    removed = time.monotonic()
    wait_until(
        lambda: gateway.run_ssh(alice.key, "git-upload-pack shop.git").returncode == 255,
        WITHIN + 2,
        "the login refused",
    )
    assert time.monotonic() - removed < WITHIN + 1  # not the 30 s a cached login lasts


def test_an_open_push_session_ends_when_its_collaborator_goes(
    gateway: RunningGateway, api: ApiServer, pushed: User
) -> None:
    alice, bob = pushed, add_user(api, "bob")
    api_as(api, alice).post("/v1/apps/shop/collaborators", json={"user": "bob"}).raise_for_status()

    async def scenario() -> tuple[float, asyncssh.SSHCompletedProcess]:
        async with gateway.connect(bob.key) as conn:
            process = await conn.create_process("git-receive-pack shop.git", encoding=None)
            assert b"refs/heads/main" in await process.stdout.readline()  # git waits for us
            await asyncio.to_thread(
                lambda: api_as(api, alice).delete("/v1/apps/shop/collaborators/bob")
            )
            removed = time.monotonic()
            result = await asyncio.wait_for(process.wait(), 10)
            return time.monotonic() - removed, result

    took, result = asyncio.run(scenario())
    assert took < WITHIN + 0.5
    assert result.exit_status == 255
    assert isinstance(result.stderr, bytes)
    assert b"your access to shop was revoked" in result.stderr


def test_an_open_tunnel_closes_when_its_collaborator_goes(
    gateway: RunningGateway, api: ApiServer, echo_database: tuple[str, int]
) -> None:
    alice, bob = add_user(api, "alice"), add_user(api, "bob")
    add_app(api, "alice", "shop", "bob")
    with_database(api, "alice", "shop", echo_database)

    async def scenario() -> float:
        async with gateway.connect(bob.key) as conn:
            reader, writer = await conn.open_connection("shop", 5432)
            writer.write(b"hello")
            assert await reader.readexactly(5) == b"hello"
            await asyncio.to_thread(
                lambda: api_as(api, alice).delete("/v1/apps/shop/collaborators/bob")
            )
            removed = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed on us
            took = time.monotonic() - removed
            with pytest.raises(asyncssh.ChannelOpenError):  # and no new one
                await conn.open_connection("shop", 5432)
            return took

    assert asyncio.run(scenario()) < WITHIN + 0.5


def test_a_destroyed_and_retaken_name_ends_the_old_sessions(
    gateway: RunningGateway, api: ApiServer, pushed: User
) -> None:
    """bob keeps a session on alice's shop; alice destroys it and bob takes the name: his
    old session was for an app that is gone, even though he may use "shop" now."""
    alice, bob = pushed, add_user(api, "bob")
    api_as(api, alice).post("/v1/apps/shop/collaborators", json={"user": "bob"}).raise_for_status()

    async def scenario() -> asyncssh.SSHCompletedProcess:
        async with gateway.connect(bob.key) as conn:
            process = await conn.create_process("git-upload-pack shop.git", encoding=None)
            assert b"refs/heads/main" in await process.stdout.readline()

            def retake() -> None:
                api_as(api, alice).delete("/v1/apps/shop").raise_for_status()
                api_as(api, bob).post("/v1/apps", json={"name": "shop"}).raise_for_status()

            await asyncio.to_thread(retake)
            return await asyncio.wait_for(process.wait(), 10)

    result = asyncio.run(scenario())
    assert result.exit_status == 255
    assert isinstance(result.stderr, bytes)
    assert b"your access to shop was revoked" in result.stderr


def test_a_key_added_right_after_a_refusal_works_at_once(
    gateway: RunningGateway, api: ApiServer
) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    new_key = generate("ed25519")
    refused = gateway.run_ssh(new_key, "git-upload-pack shop.git")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    client = api_as(api, alice)
    client.post("/v1/keys", json={**proven_key(client, new_key), "name": "new"}).raise_for_status()
    added = time.monotonic()
    wait_until(
        lambda: gateway.run_ssh(new_key, "git-upload-pack shop.git").returncode != 255,
        WITHIN + 2,
        "the new key accepted",
    )
    assert time.monotonic() - added < WITHIN + 1  # not the refusal's cache time

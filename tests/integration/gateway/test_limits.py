"""Limits no client can get around: connections before login (per client, in all, and the
time to exchange versions and keys), connections per user, env requests per session,
channels per connection, and the algorithms offered."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from slipway.gateway.limits import ConnectionLimits, source_of
from tests.control_support import ApiServer
from tests.gateway_support import (
    RecordingUpstream,
    RunningGateway,
    add_app,
    add_user,
    serve_gateway,
    with_database,
)
from tests.services import strict_ssh, wait_until

ATTACKER, USER = "127.0.0.2", "127.0.0.3"


class Hoarder:
    """Opens idle TCP connections to the gateway from one address and holds them, topping
    them up at ``rate`` per second, as an attacker starving others of logins would."""

    def __init__(self, port: int, address: str, rate: float = 8.0, initial: int = 100) -> None:
        self.port, self.address, self.rate, self.initial = port, address, rate, initial
        self.held: list[socket.socket] = []
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> None:
        sock = socket.socket()
        sock.bind((self.address, 0))
        try:
            sock.connect(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            return
        self.opened += 1
        self.held.append(sock)

    def _run(self) -> None:
        for _ in range(self.initial):
            self._open()
        while not self._stop.wait(1 / self.rate):
            self._open()

    def __enter__(self) -> Hoarder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.held:
            sock.close()


@pytest.fixture
def defended(gateway_api: ApiServer, tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway with the production limits."""
    with serve_gateway(gateway_api, tmp_path / "data") as served:
        served.gateway._local = RecordingUpstream()  # type: ignore[assignment]
        yield served


def test_one_address_cannot_lock_others_out(defended: RunningGateway, api: ApiServer) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    refused = defended.gateway.metrics.connections.labels(
        "too many unauthenticated connections from one client"
    )
    with Hoarder(defended.port, ATTACKER) as attacker:
        wait_until(lambda: refused._value.get() > 50, 10, "the attacker's flood")
        results = [
            defended.run_ssh(alice.key, "git-upload-pack shop.git", options=("-b", USER))
            for _ in range(20)
        ]
        assert attacker.opened > 100
    succeeded = sum(result.returncode == 0 for result in results)
    assert succeeded >= 19, [result.stderr for result in results]
    # The attacker never held more than its share of logins in progress.
    assert defended.gateway.config.limits.per_source == 10


def test_random_early_drop_between_start_and_full() -> None:
    limits = ConnectionLimits(rate=1e9, burst=10**9, per_source=1000, start=10, full=20)
    admitted = [limits.admit(f"10.0.0.{i}") is None for i in range(10)]
    assert all(admitted)  # up to ``start``: all of them
    # Near ``full`` only ~7 % get in, so give it enough tries to fill up for sure
    # (200 tries left it short about once in 200 runs).
    trials = [limits.admit("10.0.1.1") for _ in range(3000)]
    assert limits.unauthenticated == 20  # never beyond ``full``
    assert trials[-100:] == ["too many unauthenticated connections"] * 100
    early = [reason for reason in trials if reason and "random early drop" in reason]
    assert early, "some were refused at random before the hard cap"


def test_refused_attempts_spend_the_rate() -> None:
    limits = ConnectionLimits(rate=0.001, burst=5, per_source=1)
    assert limits.admit("192.0.2.1") is None
    reasons = [limits.admit("192.0.2.1") for _ in range(10)]
    assert reasons[:4] == ["too many unauthenticated connections from one client"] * 4
    assert reasons[4:] == ["connection rate limit"] * 6  # refusals took tokens too


def test_clients_are_addresses_and_ipv6_slash_64s() -> None:
    assert source_of("203.0.113.9") == "203.0.113.9"
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::2")
    assert source_of("2001:db8:1:2::1") != source_of("2001:db8:1:3::1")
    assert source_of("::ffff:198.51.100.4") == "198.51.100.4"


@pytest.fixture
def hasty(gateway_api: ApiServer, tmp_path: Path) -> Iterator[RunningGateway]:
    """A short handshake timeout (1 s), a longer login grace (8 s)."""
    with serve_gateway(
        gateway_api, tmp_path / "data", handshake_timeout=1.0, login_grace=8.0
    ) as served:
        served.gateway._local = RecordingUpstream()  # type: ignore[assignment]
        yield served


def test_silent_connections_end_at_the_handshake_timeout(hasty: RunningGateway) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", hasty.port), timeout=10) as sock:
        assert sock.recv(64).startswith(b"SSH-2.0-")
        assert sock.recv(64) == b""  # closed, without waiting for the login grace
    assert 0.8 < time.monotonic() - started < 4
    wait_until(lambda: hasty.gateway.config.limits.unauthenticated == 0, 5, "released")


class SlowToSign(asyncssh.SSHClient):
    """Takes its time between the key exchange and the first key."""

    def __init__(self, key: Path) -> None:
        self.key: Path | None = key

    async def public_key_auth_requested(self) -> str | None:
        await asyncio.sleep(2.5)
        key, self.key = self.key, None
        return str(key) if key else None


def test_the_login_grace_still_covers_a_slow_login(hasty: RunningGateway, api: ApiServer) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")

    async def slow_login() -> str:
        async with asyncssh.connect(
            "127.0.0.1",
            hasty.port,
            username="git",
            client_keys=[],
            known_hosts=str(hasty.known_hosts),
            agent_path=None,
            client_factory=lambda: SlowToSign(alice.key),
        ) as conn:
            return str((await upload_pack(conn)).stdout)

    assert asyncio.run(slow_login()).startswith("git-upload-pack shop")


@pytest.fixture
def capped(gateway_api: ApiServer, tmp_path: Path) -> Iterator[RunningGateway]:
    with serve_gateway(gateway_api, tmp_path / "data", max_connections_per_user=3) as served:
        served.gateway._local = RecordingUpstream()  # type: ignore[assignment]
        yield served


def test_connections_per_user_are_capped(capped: RunningGateway, api: ApiServer) -> None:
    alice, bob = add_user(api, "alice"), add_user(api, "bob")
    add_app(api, "alice", "shop", "bob")

    async def scenario() -> None:
        held = [await capped.open(alice.key) for _ in range(3)]
        extra = await capped.open(alice.key)
        with pytest.raises((asyncssh.Error, OSError)):
            await asyncio.wait_for(
                extra.run("git-upload-pack shop.git", stdin=asyncssh.DEVNULL, check=True), 10
            )
        extra.close()
        # Others are not affected, and alice gets her slot back when one closes.
        async with capped.connect(bob.key) as other:
            assert (
                await other.run("git-upload-pack shop.git", stdin=asyncssh.DEVNULL)
            ).exit_status == 0
        held.pop().close()
        await asyncio.sleep(0.5)
        async with capped.connect(alice.key) as again:
            assert (
                await again.run("git-upload-pack shop.git", stdin=asyncssh.DEVNULL)
            ).exit_status == 0
        for conn in held:
            conn.close()

    asyncio.run(scenario())
    result = capped.run_ssh(alice.key, "git-upload-pack shop.git")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: not capped.gateway.per_user, 5, "every connection counted out")


def test_the_fourth_connection_is_told_why(capped: RunningGateway, api: ApiServer) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")

    async def scenario() -> str:
        held = [await capped.open(alice.key) for _ in range(3)]
        try:
            result = capped.run_ssh(alice.key, "git-upload-pack shop.git")
            return result.stderr
        finally:
            for conn in held:
                conn.close()

    errors = asyncio.run(scenario())
    assert "alice has 3 connections open already" in errors


async def upload_pack(conn: asyncssh.SSHClientConnection) -> asyncssh.SSHCompletedProcess:
    """``git-upload-pack shop.git`` (to the recording upstream), stdin closed at once."""
    return await conn.run("git-upload-pack shop.git", stdin=asyncssh.DEVNULL, check=True)


def test_env_requests_are_capped(
    gateway: RunningGateway, api: ApiServer, recorder: RecordingUpstream
) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    seen: list[int] = []
    serve = gateway.gateway.sessions.serve

    async def counting(process: asyncssh.SSHServerProcess[bytes], *args: object) -> None:
        seen.append(len(process.env))
        await serve(process, *args)  # type: ignore[arg-type]

    gateway.gateway.sessions.serve = counting  # type: ignore[method-assign,assignment]
    try:
        flood = {f"FILL_{i}": "x" * 900 for i in range(2000)}  # 1.8 MB of env requests
        big = {"HUGE": "y" * 30_000}

        async def scenario() -> int | None:
            async with gateway.connect(alice.key) as conn:
                result = await conn.run(
                    "git-upload-pack shop.git",
                    env={**flood, **big, "GIT_PROTOCOL": "version=2"},
                    stdin=asyncssh.DEVNULL,
                )
                return result.exit_status

        assert asyncio.run(scenario()) == 0
    finally:
        gateway.gateway.sessions.serve = serve  # type: ignore[method-assign]
    assert seen and seen[0] <= 16


def test_tunnel_slots_are_given_back(
    gateway: RunningGateway, api: ApiServer, echo_database: tuple[str, int]
) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    with_database(api, "alice", "shop", echo_database)

    async def scenario() -> None:
        async with gateway.connect(alice.key) as conn:
            for number in range(50):  # five times the per-connection cap of 10
                reader, writer = await conn.open_connection("shop", 5432)
                writer.write(f"ping {number}".encode())
                assert await reader.readexactly(len(f"ping {number}")) == f"ping {number}".encode()
                writer.close()
                await asyncio.sleep(0.02)
            result = await conn.run(
                "git-upload-pack shop.git", stdin=asyncssh.DEVNULL
            )  # git too, after all that
            assert result.exit_status != 255

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("option", "refusal"),
    [
        ("KexAlgorithms=diffie-hellman-group14-sha1", "no matching key exchange method"),
        ("KexAlgorithms=diffie-hellman-group1-sha1", "no matching key exchange method"),
        ("HostKeyAlgorithms=ssh-rsa", "no matching host key type"),
        ("Ciphers=aes128-cbc", "no matching cipher"),
        ("Ciphers=aes128-ctr", "no matching cipher"),  # AES-GCM only: no MAC, SHA-1 or not
    ],
)
def test_sha1_and_old_algorithms_are_not_offered(
    gateway: RunningGateway, api: ApiServer, option: str, refusal: str
) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    result = gateway.run_ssh(alice.key, "git-upload-pack shop.git", options=("-o", option))
    assert result.returncode == 255 and refusal in result.stderr, result.stderr


def test_rsa_host_key_signs_with_sha2(gateway: RunningGateway, api: ApiServer) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    rsa = (gateway.data_dir / "gateway" / "ssh_host_rsa_key.pub").read_text().split()[:2]
    known = gateway.data_dir / "known_hosts_rsa"
    known.write_text(f"[127.0.0.1]:{gateway.port} {' '.join(rsa)}\n")
    argv = strict_ssh(
        gateway.port,
        alice.key,
        known,
        "git",
        "git-upload-pack shop.git",
        options=("-o", "HostKeyAlgorithms=rsa-sha2-512,rsa-sha2-256", "-v"),
    )
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    assert "kex: host key algorithm: rsa-sha2-512" in result.stderr
    assert "Server host key: ssh-rsa" in result.stderr  # an RSA key, SHA-2 signatures

"""Authentication: only the key a client proves it holds counts, and only for user git."""

from __future__ import annotations

import logging
import shutil
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.gateway.limits import ConnectionLimits
from tests.control_support import ApiServer
from tests.gateway_support import (
    RecordingUpstream,
    RunningGateway,
    add_app,
    add_user,
    serve_gateway,
)
from tests.keys import generate
from tests.services import wait_until

DENIED = "Permission denied (publickey)"
PROXY_CLIENT = Path(__file__).parents[2] / "proxy_client.py"


def test_wrong_user_unknown_key_and_other_methods_are_refused(
    gateway: RunningGateway, api: ApiServer
) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    for user in ("root", "alice", "Git", "git "):
        result = gateway.run_ssh(alice.key, "git-upload-pack shop.git", user=user)
        assert result.returncode == 255 and DENIED in result.stderr
    unknown = generate("ed25519")
    assert DENIED in gateway.run_ssh(unknown, "git-upload-pack shop.git").stderr
    for methods in ("password", "keyboard-interactive", "none"):
        result = gateway.run_ssh(
            alice.key,
            "git-upload-pack shop.git",
            options=("-o", f"PreferredAuthentications={methods}"),
        )
        assert result.returncode == 255
        assert "Permission denied (publickey)" in result.stderr
    assert not gateway.repos.exists()


def test_rsa_signs_with_sha2_only(
    gateway: RunningGateway, api: ApiServer, recorder: RecordingUpstream
) -> None:
    bob = add_user(api, "bob", "rsa")
    add_app(api, "bob", "shop")
    sha1 = gateway.run_ssh(
        bob.key, "git-upload-pack shop.git", options=("-o", "PubkeyAcceptedAlgorithms=ssh-rsa")
    )
    assert sha1.returncode == 255 and DENIED in sha1.stderr
    for algorithm in ("rsa-sha2-256", "rsa-sha2-512"):
        result = gateway.run_ssh(
            bob.key,
            "git-upload-pack shop.git",
            options=("-o", f"PubkeyAcceptedAlgorithms={algorithm}"),
        )
        assert result.returncode == 0, result.stderr
    ecdsa = add_user(api, "carol", "ecdsa")
    add_app(api, "carol", "blog")
    assert gateway.run_ssh(ecdsa.key, "git-upload-pack blog.git").returncode == 0
    assert len(recorder.seen) == 3


def public_only(key: Path, directory: Path) -> Path:
    """A copy of a key's public half alone: the client can offer it but not sign with it."""
    directory.mkdir(exist_ok=True)
    target = directory / key.name
    shutil.copy(f"{key}.pub", f"{target}.pub")
    return target


@pytest.mark.parametrize("order", ["victim first", "victim last"])
def test_offering_one_key_and_signing_with_another_binds_the_signer(
    gateway: RunningGateway, api: ApiServer, recorder: RecordingUpstream, tmp_path: Path, order: str
) -> None:
    """The gitea/soft-serve bypass (CVE-2024-45337 style): offer the victim's public key,
    which the server accepts, then sign with one's own key."""
    alice = add_user(api, "alice")  # the victim, owner of shop
    mallory = add_user(api, "mallory")
    add_app(api, "alice", "shop")
    victim = public_only(alice.key, tmp_path / "stolen")
    keys = [victim, mallory.key] if order == "victim first" else [mallory.key, victim]
    argv = gateway.ssh(keys[0], "git-upload-pack shop.git", options=("-i", str(keys[1]), "-v"))
    import subprocess

    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    assert "Server accepts key" in result.stderr  # the victim's key was offered and accepted
    assert result.returncode == 1
    assert "shop.git does not exist, or you have no access to it" in result.stderr
    assert recorder.seen == []


def test_too_many_keys_end_the_connection(
    gateway: RunningGateway, api: ApiServer, recorder: RecordingUpstream
) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    unknown = [generate("ed25519") for _ in range(7)]
    options: tuple[str, ...] = ()
    for key in [*unknown[1:], alice.key]:  # the right key comes too late
        options += ("-i", str(key))
    result = gateway.run_ssh(unknown[0], "git-upload-pack shop.git", options=options)
    assert result.returncode == 255
    assert (
        "Too many authentication" in result.stderr
        or "no more authentication" in result.stderr.lower()
        or "Disconnected" in result.stderr
    ), result.stderr
    assert recorder.seen == []


def test_host_keys_are_generated_private(gateway: RunningGateway) -> None:
    keys = gateway.data_dir / "gateway"
    for name in ("ssh_host_ed25519_key", "ssh_host_rsa_key"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
        assert (keys / f"{name}.pub").read_text().startswith(("ssh-ed25519 ", "ssh-rsa "))


@pytest.fixture
def strict_gateway(gateway_api: ApiServer, tmp_path: Path) -> Iterator[RunningGateway]:
    limits = ConnectionLimits(rate=0.5, burst=4, per_source=3)
    with serve_gateway(gateway_api, tmp_path / "data", login_grace=1.0, limits=limits) as served:
        yield served


def banner_or_close(port: int, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            return sock.recv(64)
        except TimeoutError:
            return b"(nothing)"


def test_login_grace_closes_silent_connections(strict_gateway: RunningGateway) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", strict_gateway.port), timeout=10) as sock:
        assert sock.recv(64).startswith(b"SSH-2.0-")
        assert sock.recv(64) == b""  # closed by the server, about one second later
    assert 0.8 < time.monotonic() - started < 5


def test_unauthenticated_connections_per_client_are_capped(
    strict_gateway: RunningGateway,
) -> None:
    waiting = [socket.create_connection(("127.0.0.1", strict_gateway.port)) for _ in range(3)]
    try:
        for sock in waiting:
            assert sock.recv(64).startswith(b"SSH-2.0-")
        assert banner_or_close(strict_gateway.port) == b""  # refused: no banner at all
    finally:
        for sock in waiting:
            sock.close()


def test_connections_per_address_are_rate_limited(strict_gateway: RunningGateway) -> None:
    answers = []
    for _ in range(6):  # one at a time, each gone before the next (per-client cap: 3)
        answers.append(banner_or_close(strict_gateway.port))
        wait_until(lambda: strict_gateway.gateway.config.limits.unauthenticated == 0, 5, "gone")
    assert all(a.startswith(b"SSH-2.0-") for a in answers[:4])
    assert answers[4:] == [b"", b""]  # over the burst of 4
    metrics = strict_gateway.gateway.metrics.connections.labels("connection rate limit")
    assert metrics._value.get() == 2


@pytest.fixture
def balanced_gateway(gateway_api: ApiServer, tmp_path: Path) -> Iterator[RunningGateway]:
    with serve_gateway(gateway_api, tmp_path / "data", proxy_allowed=["127.0.0.0/8"]) as served:
        served.gateway._local = RecordingUpstream()  # type: ignore[assignment]
        yield served


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_from_a_listed_balancer(
    balanced_gateway: RunningGateway, api: ApiServer, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    proxy = f"{sys.executable} {PROXY_CLIENT} 127.0.0.1 {balanced_gateway.port} {version}"
    with caplog.at_level(logging.INFO, logger="slipway.gateway.audit"):
        result = balanced_gateway.run_ssh(
            alice.key, "git-upload-pack shop.git", options=("-o", f"ProxyCommand={proxy}")
        )
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
    [audit] = [r for r in caplog.records if r.name == "slipway.gateway.audit"]
    assert audit.client == "203.0.113.7:5555"  # type: ignore[attr-defined]
    assert audit.user == "alice" and audit.app == "shop"  # type: ignore[attr-defined]


def test_a_listed_balancer_must_send_the_header(
    balanced_gateway: RunningGateway, api: ApiServer
) -> None:
    alice = add_user(api, "alice")
    proxy = f"{sys.executable} {PROXY_CLIENT} 127.0.0.1 {balanced_gateway.port} none"
    result = balanced_gateway.run_ssh(
        alice.key, "git-upload-pack shop.git", options=("-o", f"ProxyCommand={proxy}")
    )
    assert result.returncode == 255


def test_headers_from_unlisted_peers_are_not_trusted(
    gateway: RunningGateway, api: ApiServer
) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    proxy = f"{sys.executable} {PROXY_CLIENT} 127.0.0.1 {gateway.port} v1"
    result = gateway.run_ssh(
        alice.key, "git-upload-pack shop.git", options=("-o", f"ProxyCommand={proxy}")
    )
    assert result.returncode == 255  # the header is garbage to an SSH server

"""Every bad input of the reference is refused, and nothing reaches an upstream or the disk."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.control_support import ApiServer
from tests.gateway_support import RecordingUpstream, RunningGateway, User, add_app, add_user

NOT_GIT = "slipway: only git push and fetch are allowed here\n"


@pytest.fixture
def alice(api: ApiServer) -> User:
    user = add_user(api, "alice")
    add_app(api, "alice", "shop")
    return user


BAD_COMMANDS = [
    "",
    "shell",
    "sh",
    "bash -c id",
    "git-shell",
    "git-upload-pack2 shop.git",
    "git-receive-packx shop.git",
    "git upload-pack2 shop.git",
    "scp -t /tmp",
    "git-upload-pack 'shop.git",
    'git-upload-pack "shop.git',
    "git-upload-pack shop.git\\",
    "git-upload-pack shop.git; id",
    "git-upload-pack shop.git | id",
    "git-upload-pack $(id)",
    "git-upload-pack `id`",
    "git-upload-pack shop.git\nid",
    "git-upload-pack shop.git\rid",
    "git-upload-pack \x1b[31mshop.git",
    "git-upload-pack " + "a" * 2000,
    "env LD_PRELOAD=x git-upload-pack shop.git",
    "/usr/bin/git-upload-pack shop.git",
]
BAD_ARGUMENTS = [
    ("git-upload-pack", "takes exactly one repository"),
    ("git-upload-pack shop.git other.git", "takes exactly one repository"),
    ("git-upload-pack '--help'", "is not a repository here"),
    ("git-upload-pack --upload-pack=touch", "is not a repository here"),
    ("git-receive-pack -c core.sshCommand=x shop.git", "takes exactly one repository"),
]
BAD_REPOSITORIES = [
    "..",
    "a/../b",
    "/abs/path",
    "~u/x",
    "//x",
    "x/",
    "''",
    "shop.git.git",
    "Shop.git",
    "%2e%2e",
    "sh\u043ep.git",  # with a Cyrillic o
    "a" * 60 + ".git",
    "shop_.git",
    "-shop.git",
    "shop-.git",
    "sh",
    "shop.GIT",
    "./shop.git",
    "shop.git/",
    "/../shop.git",
]


@pytest.mark.parametrize("command", BAD_COMMANDS)
def test_commands_other_than_git_are_refused(
    gateway: RunningGateway, alice: User, recorder: RecordingUpstream, command: str
) -> None:
    result = gateway.run_ssh(alice.key, command) if command else gateway.run_ssh(alice.key)
    assert result.returncode == 1
    refusal = result.stderr.splitlines()[-1]
    assert refusal + "\n" == NOT_GIT or refusal.startswith("slipway: "), result.stderr
    assert recorder.seen == []
    assert not gateway.repos.exists()


@pytest.mark.parametrize(("command", "message"), BAD_ARGUMENTS)
def test_wrong_arguments_are_refused(
    gateway: RunningGateway, alice: User, recorder: RecordingUpstream, command: str, message: str
) -> None:
    result = gateway.run_ssh(alice.key, command)
    assert result.returncode == 1 and message in result.stderr
    assert recorder.seen == [] and not gateway.repos.exists()


@pytest.mark.parametrize("repository", BAD_REPOSITORIES)
def test_bad_repository_names_are_refused(
    gateway: RunningGateway, alice: User, recorder: RecordingUpstream, repository: str
) -> None:
    for verb in ("git-upload-pack", "git-receive-pack", "git-upload-archive"):
        result = gateway.run_ssh(alice.key, f"{verb} {repository}")
        assert result.returncode == 1
        assert "is not a repository here" in result.stderr or "exactly one" in result.stderr
    assert recorder.seen == [] and not gateway.repos.exists()


def test_only_canonical_commands_reach_the_upstream(
    gateway: RunningGateway, alice: User, recorder: RecordingUpstream
) -> None:
    for command in (
        "git-upload-pack 'shop.git'",
        "git-upload-pack /shop",
        "git upload-pack shop",
        'git-receive-pack "/shop.git"',
        "git-upload-archive shop.git",
    ):
        result = gateway.run_ssh(alice.key, command)
        assert result.returncode == 0, result.stderr
    assert [(r.command.verb, r.command.app) for r in recorder.seen] == [
        ("git-upload-pack", "shop"),
        ("git-upload-pack", "shop"),
        ("git-upload-pack", "shop"),
        ("git-receive-pack", "shop"),
        ("git-upload-archive", "shop"),
    ]


@pytest.mark.parametrize(
    ("env", "reaches"),
    [
        ("GIT_PROTOCOL=version=2", "version=2"),
        ("GIT_PROTOCOL=version=22", None),
        ("GIT_PROTOCOL=version=2 x", None),
        ("GIT_PROTOCOL=--split-string", None),
        ("LD_PRELOAD=/tmp/evil.so", None),
        ("GIT_CONFIG_COUNT=1", None),
        ("GIT_EXEC_PATH=/tmp", None),
        ("--split-string=x", None),
    ],
)
def test_only_a_valid_git_protocol_crosses(
    gateway: RunningGateway, alice: User, recorder: RecordingUpstream, env: str, reaches: str | None
) -> None:
    result = gateway.run_ssh(
        alice.key, "git-upload-pack shop.git", options=("-o", f'SetEnv="{env}"')
    )
    assert result.returncode == 0, result.stderr
    [record] = recorder.seen
    assert record.git_protocol == reaches


@pytest.mark.parametrize(
    ("options", "command", "client_says"),
    [
        (("-tt",), "git-upload-pack shop.git", "PTY allocation request failed"),
        (("-s",), "sftp", "subsystem request failed"),
        (
            ("-X", "-o", "ForwardX11Trusted=yes"),
            "git-upload-pack shop.git",
            "X11 forwarding request",
        ),
    ],
)
def test_session_requests_are_refused(
    gateway: RunningGateway,
    alice: User,
    recorder: RecordingUpstream,
    options: tuple[str, ...],
    command: str,
    client_says: str,
) -> None:
    env_display = {"DISPLAY": ":99"} if "-X" in options else {}
    result = subprocess.run(
        gateway.ssh(alice.key, command, options=("-v", *options)),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", **env_display},
    )
    assert client_says in result.stderr
    if "-s" in options:
        assert recorder.seen == []


@pytest.mark.parametrize(
    ("request_type", "payload"),
    [
        (b"pty-req", [b"xterm", 80, 24, 0, 0, b""]),
        (b"x11-req", [False, b"MIT-MAGIC-COOKIE-1", b"00", 0]),
        (b"auth-agent-req@openssh.com", []),
        (b"subsystem", [b"sftp"]),
        (b"shell", []),
        (b"exec", [b"sh"]),  # a second command on a session that already runs one
        (b"unknown-request@example.com", []),
    ],
)
def test_session_requests_after_exec_get_false(
    gateway: RunningGateway,
    alice: User,
    recorder: RecordingUpstream,
    request_type: bytes,
    payload: list[object],
) -> None:
    """Asked with want-reply (OpenSSH asks some without), every one is answered false."""
    from asyncssh.packet import Boolean, String, UInt32

    def encode(value: object) -> bytes:
        if isinstance(value, bool):
            return Boolean(value)
        if isinstance(value, int):
            return UInt32(value)
        return String(value)  # type: ignore[arg-type]

    async def ask() -> bool:
        async with gateway.connect(alice.key) as conn:
            process = await conn.create_process("git-upload-pack shop.git", encoding=None)
            assert await process.stdout.readline() == b"git-upload-pack shop\n"  # running
            answer = await process.channel._make_request(request_type, *map(encode, payload))
            process.close()
            return bool(answer)

    assert gateway.call(ask()) is False
    assert [r.command.app for r in recorder.seen] == ["shop"]


@pytest.mark.parametrize(
    "destination",
    [
        "127.0.0.1:22",
        "169.254.169.254:80",
        "localhost:8080",
        "shop:5432",
        "[::1]:22",
        "nothing-here:5432",
        "SHOP:5432",
        "../etc:1",
    ],
)
def test_tunnels_to_addresses_or_apps_without_a_database_are_refused(
    gateway: RunningGateway, alice: User, destination: str
) -> None:
    result = gateway.run_ssh(alice.key, options=("-W", destination), timeout=30)
    assert result.returncode == 255
    assert "open failed" in result.stderr, result.stderr


def channel_attempts() -> list[tuple[str, object]]:
    """Channels and global requests OpenSSH only sends when a local socket is used."""
    import asyncssh

    async def direct_tcpip(conn: asyncssh.SSHClientConnection) -> object:
        return await conn.create_connection(asyncssh.SSHTCPSession, "127.0.0.1", 22)

    async def remote_forward(conn: asyncssh.SSHClientConnection) -> object:
        return await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 22)

    async def unix_channel(conn: asyncssh.SSHClientConnection) -> object:
        return await conn.create_unix_connection(asyncssh.SSHUNIXSession, "/var/run/docker.sock")

    async def unix_forward(conn: asyncssh.SSHClientConnection) -> object:
        return await conn.forward_remote_path("/tmp/slipway-forward.sock", "/tmp/x.sock")

    async def tun(conn: asyncssh.SSHClientConnection) -> object:
        return await conn.open_tun()

    return [
        ("direct-tcpip", direct_tcpip),
        ("tcpip-forward", remote_forward),
        ("direct-streamlocal", unix_channel),
        ("streamlocal-forward", unix_forward),
        ("tun", tun),
    ]


@pytest.mark.parametrize(
    ("kind", "attempt"), channel_attempts(), ids=[kind for kind, _ in channel_attempts()]
)
def test_other_channels_and_global_requests_are_refused(
    gateway: RunningGateway, alice: User, kind: str, attempt: object
) -> None:
    import asyncssh

    async def run() -> str:
        async with gateway.connect(alice.key) as conn:
            try:
                await attempt(conn)  # type: ignore[operator]
            except (asyncssh.ChannelOpenError, asyncssh.ChannelListenError) as error:
                return type(error).__name__
            return "accepted"

    assert gateway.call(run()) in ("ChannelOpenError", "ChannelListenError")


def test_a_client_that_disconnects_kills_the_command(
    gateway: RunningGateway, alice: User, recorder: RecordingUpstream
) -> None:
    process = subprocess.Popen(
        gateway.ssh(alice.key, "git-upload-pack shop.git"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"git-upload-pack shop\n"
    process.kill()
    process.wait()
    import time

    deadline = time.monotonic() + 10
    while not recorder.seen[0].killed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorder.seen[0].killed


def test_exit_status_and_data_cross_both_ways(
    gateway: RunningGateway, alice: User, recorder: RecordingUpstream
) -> None:
    recorder.exit_status = 3
    result = subprocess.run(
        gateway.ssh(alice.key, "git-upload-pack shop.git"),
        input=b"ping\n" * 1000,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 3
    assert result.stdout == b"git-upload-pack shop\n" + b"ping\n" * 1000


def test_a_silent_command_is_not_cut(
    gateway: RunningGateway, alice: User, recorder: RecordingUpstream
) -> None:
    recorder.silent_for = 3.0  # longer than the login grace of the test gateway
    result = gateway.run_ssh(alice.key, "git-upload-pack shop.git")
    assert result.returncode == 0 and result.stdout == "git-upload-pack shop\n"


def test_raw_garbage_before_the_handshake_is_dropped(gateway: RunningGateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = sock.recv(1024)
        while chunk := sock.recv(1024):
            data += chunk
    assert data.startswith(b"SSH-2.0-")  # our banner, then the connection closes

"""What a session channel may do: exec a git command (no subsystem, no pty), with a few small
env requests, and end with the reason on stderr."""

from __future__ import annotations

import contextlib

import asyncssh

MAX_ENV_REQUESTS = 16  # per session: only GIT_PROTOCOL is ever used
MAX_ENV_REQUEST_BYTES = 1024


def end_session(process: asyncssh.SSHServerProcess[bytes], reason: str) -> None:
    with contextlib.suppress(OSError, asyncssh.Error):
        process.stderr.write(f"slipway: {reason}\n".encode())
        process.exit(255)


def cap_environment(channel: asyncssh.SSHServerChannel[bytes]) -> None:
    """asyncssh keeps every env request; keep only a few small ones (GIT_PROTOCOL is all
    we read), so that a session cannot fill the gateway's memory with them."""
    store = channel._process_env_request
    count = 0

    def limited(packet: asyncssh.packet.SSHPacket) -> bool:
        nonlocal count
        count += 1
        if count > MAX_ENV_REQUESTS or len(packet.get_remaining_payload()) > MAX_ENV_REQUEST_BYTES:
            return False
        return bool(store(packet))

    channel._process_env_request = limited  # type: ignore[method-assign]


class GitProcess(asyncssh.SSHServerProcess[bytes]):
    """A session that may only exec: no subsystem (sftp...), no pty (disabled)."""

    def __init__(self, handler: object) -> None:
        super().__init__(handler, None, 0, False)  # type: ignore[arg-type]

    def subsystem_requested(self, subsystem: str) -> bool:
        return False

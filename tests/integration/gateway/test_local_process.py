"""The relay of a local command's output to an SSH channel, between a real asyncssh server
and client: a client that stops reading stops the command, and nothing is lost."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path

import asyncssh
import pytest

from slipway.gateway.local_upstream import LocalProcess

BLOCK = 256 * 1024
BLOCKS = 256  # 64 MiB: far more than the SSH window and the socket buffers hold together

WRITER = f"""
import hashlib, os, sys
progress, digest, block = sys.argv[1], hashlib.sha256(), os.urandom({BLOCK})
for index in range({BLOCKS}):
    block = hashlib.sha256(block).digest() * ({BLOCK} // 32)
    digest.update(block)
    sys.stdout.buffer.write(block)
    sys.stdout.buffer.flush()
    with open(progress, "w") as file:
        file.write(str(index + 1))
sys.stderr.write(digest.hexdigest())
"""


class NoAuthentication(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False


async def _serve(process: asyncssh.SSHServerProcess[bytes], progress: Path) -> None:
    _, command = await asyncio.get_running_loop().subprocess_exec(
        lambda: LocalProcess(notice="a notice"),
        sys.executable,
        "-c",
        WRITER,
        str(progress),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    sent = [0]

    def count(size: int) -> None:
        sent[0] += size

    await command.send_output(process.stdout, process.stderr, count)
    exit = await command.wait()
    process.stdout.write(f"sent {sent[0]}".encode())  # after the data: the client splits it
    process.exit(exit.status if exit.status is not None else 255)


@pytest.mark.timeout(120)
async def test_a_client_that_stops_reading_pauses_the_command_and_gets_every_byte(
    tmp_path: Path,
) -> None:
    progress = tmp_path / "progress"
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_factory=NoAuthentication,
        server_host_keys=[host_key],
        process_factory=lambda process: _serve(process, progress),
        encoding=None,
        allow_scp=False,
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncssh.connect(
            "127.0.0.1", port, known_hosts=None, username="me", agent_path=None
        ) as connection:
            client = await connection.create_process("write", encoding=None)
            await asyncio.sleep(3)  # reading nothing
            written = int(progress.read_text()) * BLOCK
            assert written < BLOCKS * BLOCK // 2, f"{written} bytes written to a stalled client"
            received = await client.stdout.read()
            errors = await client.stderr.read()
            result = await client.wait()
    finally:
        server.close()
        await server.wait_closed()
    assert result.exit_status == 0
    data, tail = received[: BLOCKS * BLOCK], received[BLOCKS * BLOCK :]
    assert len(data) == BLOCKS * BLOCK
    assert errors.startswith(b"a notice\n")  # the notice comes before what the command says
    assert hashlib.sha256(data).hexdigest().encode() == errors.removeprefix(b"a notice\n")
    assert tail == f"sent {len(received) - len(tail) + len(errors)}".encode()

"""`slipway db-tunnel` end to end: the real CLI (asyncssh) through the real gateway to the
app's PostgreSQL add-on; what the app wrote is read through the local port; strangers are
refused; a removed collaborator's open tunnel ends; the first connection asks about the
host key; a dropped connection is made again."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncssh
import psycopg
import pytest

from tests.builds_support import SLIPWAY, SLIPWAYD, Platform, web_app
from tests.integration.runtime.test_run import read_until
from tests.services import wait_until

pytestmark = pytest.mark.timeout(300)
OPEN = re.compile(r"open on 127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(tmp_path_factory.mktemp("tunnel"))
    platform.start()
    app = platform.new_app("shop", None, web_app("shop"))
    assert platform.push(app).returncode == 0
    platform.answers("shop", "shop pid=")
    added = json.loads(platform.run(SLIPWAY, "addons", "add", "postgresql", "-a", "shop", "--json"))
    wait_until(
        lambda: platform.releases("shop")[0]["version"] == added["release_version"],
        30,
        "the add-on's release",
    )
    sql = "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('written by the app')"
    wrote = subprocess.run(
        [SLIPWAY, "run", "-a", "shop", f'psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "{sql}"'],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrote.returncode == 0, wrote.stderr
    platform.addon = added  # type: ignore[attr-defined]
    yield platform
    platform.stop()


def user(platform: Platform, name: str) -> dict[str, str]:
    """Another user, logged in, with a key of their own, in a home of their own."""
    token = platform.run(*SLIPWAYD, "admin", "create-user", name).strip()
    home = platform.root / name
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    env = {**platform.env, "HOME": str(home)}
    env.pop("GIT_SSH_COMMAND", None)
    key = home / ".ssh" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    shutil.copy(platform.home / ".ssh" / "known_hosts", home / ".ssh" / "known_hosts")
    for argv in (("login", "--api-url", platform.api_url, "--token", token), ("keys", "add")):
        done = subprocess.run([SLIPWAY, *argv], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return env


class OpenTunnel:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [SLIPWAY, "db-tunnel", "-a", "shop", "-p", "0", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        found = OPEN.search(first)
        assert found, first + self.process.stderr.read() if self.process.stderr else first
        self.port = int(found[1])
        self.url = self.process.stdout.readline().strip()

    def close(self) -> str:
        self.process.terminate()
        _, err = self.process.communicate(timeout=20)
        return err


def test_the_tunnel_reads_what_the_app_wrote(platform: Platform) -> None:
    tunnel = OpenTunnel(platform.env, "--show-password")
    try:
        assert tunnel.url.startswith("postgresql://") and f":{tunnel.port}/" in tunnel.url
        connections = [psycopg.connect(tunnel.url) for _ in range(5)]  # several at once
        for connection in connections:
            row = connection.execute("SELECT body FROM notes").fetchone()
            assert row == ("written by the app",)
        for connection in connections:
            connection.close()
        result = subprocess.run(
            ["psql", tunnel.url, "-At", "-c", "SELECT count(*) FROM notes"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.stdout.strip() == "1", result.stderr
    finally:
        tunnel.close()
    hidden = OpenTunnel(platform.env)
    try:
        assert "PASSWORD" in hidden.url and "--show-password" in hidden.process.stdout.readline()  # type: ignore[union-attr]
    finally:
        hidden.close()


async def gateway_tunnel(platform: Platform, key: Path, destination: str) -> None:
    async with asyncssh.connect(
        "127.0.0.1",
        platform.ssh_port,
        username="git",
        client_keys=[str(key)],
        known_hosts=None,
        config=None,
    ) as connection:
        await connection.open_connection(destination, 5432)


def test_a_strangers_tunnel_is_refused(platform: Platform) -> None:
    bob = user(platform, "bob")
    refused = subprocess.run(
        [SLIPWAY, "db-tunnel", "-a", "shop", "-p", "0"], env=bob, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "no app named 'shop'" in refused.stderr
    key = Path(bob["HOME"]) / ".ssh" / "id_ed25519"
    for destination in ("shop", f"shop.{platform.addon['id']}", "127.0.0.1"):  # type: ignore[attr-defined]
        with pytest.raises(asyncssh.ChannelOpenError):
            asyncio.run(gateway_tunnel(platform, key, destination))


def test_removing_a_collaborator_ends_their_open_tunnel(platform: Platform) -> None:
    carol = user(platform, "carol")
    platform.run(SLIPWAY, "collaborators", "add", "carol", "-a", "shop")
    tunnel = OpenTunnel(carol, "--show-password")
    try:
        connection = psycopg.connect(tunnel.url)
        assert connection.execute("SELECT count(*) FROM notes").fetchone() == (1,)
        platform.run(SLIPWAY, "collaborators", "remove", "carol", "-a", "shop")

        def ended() -> bool:
            try:
                connection.execute("SELECT 1")
            except psycopg.OperationalError:
                return True
            return False

        wait_until(ended, 10, "the collaborator's open connection to end")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(tunnel.url, connect_timeout=10).close()
    finally:
        err = tunnel.close()
    assert "the gateway refused the tunnel" in err


def test_the_first_connection_asks_about_the_host_key(platform: Platform) -> None:
    dave = user(platform, "dave")
    platform.run(SLIPWAY, "collaborators", "add", "dave", "-a", "shop")
    known_hosts = Path(dave["HOME"]) / ".ssh" / "known_hosts"
    known_hosts.unlink()
    refused = subprocess.run(
        [SLIPWAY, "db-tunnel", "-a", "shop", "-p", "0"], env=dave, capture_output=True,
        text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert refused.returncode == 1
    key = asyncssh.read_public_key(platform.data / "gateway" / "ssh_host_ed25519_key.pub")
    fingerprint = key.get_fingerprint("sha256")
    assert f"unknown host key {fingerprint}" in refused.stderr
    assert not known_hosts.exists()
    primary, secondary = os.openpty()
    cli = subprocess.Popen(
        ["setsid", "--ctty", SLIPWAY, "db-tunnel", "-a", "shop", "-p", "0"],
        stdin=secondary, stdout=secondary, stderr=secondary, env=dave,
    )  # fmt: skip
    try:
        read_until(primary, b"(yes/no)?")
        os.write(primary, b"yes\n")
        read_until(primary, b"open on 127.0.0.1:")
        assert f"[127.0.0.1]:{platform.ssh_port} ssh-ed25519" in known_hosts.read_text()
        assert known_hosts.stat().st_mode & 0o777 == 0o600
    finally:
        cli.terminate()
        cli.wait(20)
        os.close(primary)
        os.close(secondary)


def test_a_dropped_connection_is_made_again(platform: Platform) -> None:
    tunnel = OpenTunnel(platform.env, "--show-password")
    try:
        psycopg.connect(tunnel.url).close()
        platform.restart()  # the gateway, the API and the database all go, then come back

        def reads() -> bool:
            try:
                with psycopg.connect(tunnel.url, connect_timeout=5) as connection:
                    return connection.execute("SELECT count(*) FROM notes").fetchone() == (1,)
            except psycopg.OperationalError:
                return False

        wait_until(reads, 60, "the tunnel to work again")
        assert tunnel.process.poll() is None
    finally:
        err = tunnel.close()
    assert "reconnect" in err


def test_keys_from_the_agent_from_i_and_from_the_ssh_config_are_used(platform: Platform) -> None:
    """An ECDSA key only in ssh-agent; an RSA key named with -i, then by ~/.ssh/config."""
    erin = user(platform, "erin")
    platform.run(SLIPWAY, "collaborators", "add", "erin", "-a", "shop")
    ssh = Path(erin["HOME"]) / ".ssh"
    for kind in ("ecdsa", "rsa"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(ssh / f"extra_{kind}")],
            check=True,
        )
        added = subprocess.run(
            [SLIPWAY, "keys", "add", str(ssh / f"extra_{kind}.pub"), "--name", kind],
            env=erin, capture_output=True, text=True,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    for name in ("id_ed25519", "id_ed25519.pub"):
        (ssh / name).unlink()  # only the agent's and -i's keys are left
    agent = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True)
    found = dict(re.findall(r"(SSH_AUTH_SOCK|SSH_AGENT_PID)=([^;]+);", agent.stdout))
    env = {**erin, **found}
    try:
        subprocess.run(["ssh-add", "-q", str(ssh / "extra_ecdsa")], env=env, check=True)
        (ssh / "extra_ecdsa").rename(ssh / "hidden")  # not on disk where asyncssh looks
        tunnel = OpenTunnel(env, "--show-password")
        try:
            assert psycopg.connect(tunnel.url).execute("SELECT 1").fetchone() == (1,)
        finally:
            tunnel.close()
        without_agent = {k: v for k, v in erin.items() if k != "SSH_AUTH_SOCK"}
        tunnel = OpenTunnel(without_agent, "-i", str(ssh / "extra_rsa"), "--show-password")
        try:
            assert psycopg.connect(tunnel.url).execute("SELECT 1").fetchone() == (1,)
        finally:
            tunnel.close()
        refused = subprocess.run(
            [SLIPWAY, "db-tunnel", "-a", "shop", "-p", "0"], env=without_agent,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 1 and "refused your keys" in refused.stderr
        (ssh / "config").write_text(f"Host 127.0.0.1\n    IdentityFile {ssh / 'extra_rsa'}\n")
        tunnel = OpenTunnel(without_agent, "--show-password")
        try:
            assert psycopg.connect(tunnel.url).execute("SELECT 1").fetchone() == (1,)
        finally:
            tunnel.close()
    finally:
        subprocess.run(["kill", found["SSH_AGENT_PID"]], check=False)


def test_megabytes_both_ways_then_the_end_reaches_the_far_side(platform: Platform) -> None:
    """4 MB each way through a Redis add-on (AUTH, then an ECHO read back whole), then the
    client shuts its side down: Redis sees the end and hangs up, and that comes back as
    the end of the local connection. (Redis drops unsent answers when it sees an end, so
    the end is sent only once the answer is in.)"""
    added = json.loads(platform.run(SLIPWAY, "addons", "add", "redis", "-a", "shop", "--json"))
    tunnel = OpenTunnel(platform.env, "--show-password", added["id"])
    try:
        password = urlsplit(tunnel.url).password or ""
        body = os.urandom(2 * 1024 * 1024).hex().encode()
        expected = b"+OK\r\n$%d\r\n%s\r\n" % (len(body), body)
        with socket.create_connection(("127.0.0.1", tunnel.port), timeout=30) as client:
            auth = f"AUTH {password}\r\n".encode()
            client.sendall(auth + b"*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n" % (len(body), body))
            answer = bytearray()
            while len(answer) < len(expected) and (chunk := client.recv(1 << 16)):
                answer += chunk
            assert bytes(answer) == expected
            client.shutdown(socket.SHUT_WR)
            assert client.recv(1) == b""  # Redis hung up, through both ends of the tunnel
    finally:
        tunnel.close()
        platform.run(SLIPWAY, "addons", "remove", added["id"], "-a", "shop", "--yes")

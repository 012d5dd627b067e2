"""Private instances of the real services tests talk to, each on a free port in a temp dir.

Never the machine's shared services or standard ports: two test runs at once must not collide.
Each class is a context manager that starts its service, waits until it answers, and always
tears it down.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import getpass
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import redis

from slipway.embedded.postgres import bindir
from slipway.embedded.redis_server import answers_ping, redis_argv
from slipway.host.ports import free_port, port_open

START_ATTEMPTS = 5


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    process: subprocess.Popen[Any] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout} s")
        time.sleep(0.02)


def strict_ssh(
    port: int, key: Path, known_hosts: Path, user: str, *args: str, options: Sequence[str] = ()
) -> list[str]:
    """An ``ssh`` command line to 127.0.0.1 that reads no config, offers exactly ``key`` and
    trusts exactly ``known_hosts``; ``options`` go before the destination, ``args`` after."""
    return [
        "ssh",
        "-F",
        "/dev/null",
        "-p",
        str(port),
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "ConnectTimeout=10",
        *options,
        f"{user}@127.0.0.1",
        *args,
    ]


def exited(pid: int) -> bool:
    """The process is gone, or a zombie that only waits for its parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(") ")[2].startswith("Z")
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
        return True


def stop_process(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10
) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Service:
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class RedisServer(_Service):
    """redis-server on a free loopback port; without persistence unless ``persist``."""

    def __init__(self, persist: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="slipway-redis-"))
        self.port = 0
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    def _launch(self) -> subprocess.Popen[bytes]:
        argv = redis_argv(self.dir, port=self.port, persist=self.persist)
        if self.persist:
            argv += ["--appendfsync", "always"]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _ in range(START_ATTEMPTS):  # another run may take the port between pick and bind
            self.port = free_port()
            self.process = self._launch()
            try:
                wait_until(lambda: answers_ping(self.url), 10, "redis-server", self.process)
                return
            except RuntimeError:
                continue
        raise RuntimeError("redis-server did not start on any free port")

    def restart(self) -> None:
        """Stop and start again on the same port: clients see a dropped connection."""
        assert self.process is not None
        stop_process(self.process)
        self.process = self._launch()
        wait_until(lambda: answers_ping(self.url), 10, "redis-server", self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


class Sshd(_Service):
    """OpenSSH's sshd with its own host key and authorized_keys, for the current user.

    It is the SSH upstream in gateway tests; ``client_argv`` gives an ``ssh`` command line that
    trusts exactly this server's host key and offers exactly the test key.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="slipway-sshd-"))
        self.port = 0
        self.user = getpass.getuser()
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.client_key = self.dir / "id_ed25519"
        self.authorized_keys = self.dir / "authorized_keys"
        self.known_hosts = self.dir / "known_hosts"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        for key in (self.host_key, self.client_key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
        shutil.copy(f"{self.client_key}.pub", self.authorized_keys)
        if os.geteuid() == 0:
            # sshd running as root insists on its privilege-separation directory.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            config = self.dir / "sshd_config"
            config.write_text(
                f"Port {self.port}\nListenAddress 127.0.0.1\n"
                f"HostKey {self.host_key}\nPidFile {self.dir / 'sshd.pid'}\n"
                f"AuthorizedKeysFile {self.authorized_keys}\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                "StrictModes no\nPermitRootLogin prohibit-password\nLogLevel ERROR\n"
                "AcceptEnv GIT_PROTOCOL\nMaxStartups 100:30:200\n"
            )
            host_pub = Path(f"{self.host_key}.pub").read_text().split()[:2]
            self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {' '.join(host_pub)}\n")
            self.process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL
            )
            try:
                wait_until(lambda: port_open("127.0.0.1", self.port), 10, "sshd", self.process)
                return
            except RuntimeError:
                continue
        raise RuntimeError("sshd did not start on any free port")

    def client_argv(self, *command: str) -> list[str]:
        return strict_ssh(self.port, self.client_key, self.known_hosts, self.user, *command)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


class Postgres(_Service):
    """A throwaway PostgreSQL cluster (initdb + pg_ctl) with trust auth on a free port.

    PostgreSQL refuses to run as root, so under root the cluster belongs to ``postgres``.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="slipway-pg-"))
        self.data = self.dir / "data"
        self.port = 0
        self.bindir = bindir()
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        subprocess.run(
            [*prefix, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def start(self) -> None:
        if self._as_root:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "-t",
                    "30",
                    "start",
                )
                return
            except subprocess.CalledProcessError:
                continue
        raise RuntimeError(f"PostgreSQL did not start; see {self.dir / 'log'}")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self.dir, ignore_errors=True)


class Sidekiq(_Service):
    """Ruby Sidekiq (`sidekiq -r FILE -q QUEUE -c N`) against a given Redis.

    Ready when its process appears in Redis' ``processes`` set, as Sidekiq's own API sees it.
    """

    def __init__(
        self,
        redis_url: str,
        require: Path,
        queues: Sequence[str] = ("default",),
        concurrency: int = 5,
        extra_env: dict[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.redis_url = redis_url
        self.require = require
        self.queues = queues
        self.concurrency = concurrency
        self.env = {**os.environ, "REDIS_URL": redis_url, **(extra_env or {})}
        self.extra_args = extra_args
        self.log = Path(tempfile.mkstemp(prefix="slipway-sidekiq-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None
        self.namespace = (extra_env or {}).get("SIDEKIQ_NAMESPACE")

    def _registered(self) -> bool:
        assert self.process is not None
        marker = f":{self.process.pid}:"
        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            key = f"{self.namespace}:processes" if self.namespace else "processes"
            return any(marker in member for member in client.smembers(key))
        finally:
            client.close()

    def start(self) -> None:
        argv = [
            "sidekiq",
            "-r",
            str(self.require.resolve()),
            "-c",
            str(self.concurrency),
            "-t",
            "5",
            *self.extra_args,
        ]
        for queue in self.queues:
            argv += ["-q", queue]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)
        wait_until(self._registered, 30, f"sidekiq (log: {self.log})", self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=15)
        self.log.unlink(missing_ok=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def redis_cli(url: str, *args: str) -> str:
    result = subprocess.run(
        ["redis-cli", "-u", url, *args], check=True, capture_output=True, text=True
    )
    return result.stdout


def job_json(job: dict[str, object]) -> str:
    return json.dumps(job, separators=(",", ":"))


class UnixRedisServer(RedisServer):
    """redis-server on a unix socket only, as `slipwayd up` runs it (``unix://`` URLs)."""

    def _launch(self) -> subprocess.Popen[bytes]:
        argv = redis_argv(self.dir, persist=self.persist)  # no port: DIR/redis.sock only
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"unix://{self.dir / 'redis.sock'}"

    def start(self) -> None:
        self.process = self._launch()
        wait_until(lambda: answers_ping(self.url), 10, "redis-server", self.process)


@functools.cache
def apps_dir() -> Path:
    """SLIPWAY_APPS_DIR for a test's platform: where app users (when the tests run as root)
    can reach their builds and releases, which pytest's private tmp dirs are not; removed
    when the tests end, so nothing piles up on the machine."""
    directory = Path(tempfile.mkdtemp(prefix="slipway-test-apps-"))
    directory.chmod(0o711)
    atexit.register(shutil.rmtree, directory, True)
    return directory

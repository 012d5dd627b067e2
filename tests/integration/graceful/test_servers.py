"""Slipway's own servers upgraded in place under load: `slipwayd api` and `slipwayd gateway`
on their own (each upgrades itself on HUP), and `slipwayd up` (the supervisor upgrades them).
No git command, HTTP request or running clone may fail."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import psutil
import pytest

from slipway.host.ports import free_port
from tests.keys import proven_key
from tests.load import Load
from tests.services import apps_dir, exited, wait_until

SLIPWAYD = [sys.executable, "-m", "slipway.daemon"]
PROXY = Path(__file__).parents[2] / "throttled_proxy.py"
REPOSITORY_MB = 4
UPGRADES = 5


@dataclass
class Platform:
    """A running Slipway with a user, a key and a pushed app called hello."""

    home: Path
    data: Path
    env: dict[str, str]
    http_port: int
    ssh_port: int
    metrics_port: int
    token: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def remote(self) -> str:
        return f"ssh://git@127.0.0.1:{self.ssh_port}/hello.git"

    def pid(self, server: str) -> int:
        return int((self.data / f"{server}.pid").read_text())

    def wait_for_new(self, server: str, old: int) -> int:
        wait_until(lambda: self.pid(server) != old, 30, f"the new {server}")
        return self.pid(server)

    def ssh_command(self, *options: str) -> str:
        ssh = self.home / ".ssh"
        return " ".join(
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-i",
                str(ssh / "id"),
                "-o",
                f"UserKnownHostsFile={ssh / 'known_hosts'}",
                *options,
            ]
        )

    def git(self, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=120,
            env={**self.env, "GIT_SSH_COMMAND": self.ssh_command()},
        )
        if result.returncode != 0:
            raise RuntimeError(f"git {args[0]}: {result.stderr.strip()}")
        return result.stdout

    def ls_remote(self) -> str:
        return self.git("ls-remote", self.remote)

    def paced_ls_remote(self) -> str:
        """Under the gateway's default limit of 10 new connections a second per client."""
        time.sleep(0.25)
        return self.ls_remote()

    def list_apps(self) -> list[str]:
        """One request on a new connection, as a `slipway` command makes it."""
        response = httpx.get(
            f"{self.url}/v1/apps",
            timeout=10,
            headers={"Authorization": f"Bearer {self.token}", "Connection": "close"},
        )
        response.raise_for_status()
        return [app["name"] for app in response.json()["items"]]

    def gateway_metrics(self) -> str:
        response = httpx.get(
            f"http://127.0.0.1:{self.metrics_port}/metrics",
            timeout=10,
            headers={"Connection": "close"},
        )
        response.raise_for_status()
        return response.text

    def slipwayd(self, *args: str) -> str:
        result = subprocess.run(
            [*SLIPWAYD, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def prepare(self) -> None:
        """The user alice, her key, and the app hello with a few MB pushed."""
        self.token = self.slipwayd("admin", "create-user", "alice").strip()
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "id")], check=True
        )
        api = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"})
        api.post("/v1/keys", json=proven_key(api, ssh / "id")).raise_for_status()
        api.post("/v1/apps", json={"name": "hello"}).raise_for_status()
        kind, key = (self.data / "gateway" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        (ssh / "known_hosts").write_text(f"[127.0.0.1]:{self.ssh_port} {kind} {key}\n")
        source = self.home / "hello"
        source.mkdir()
        self.git("init", "-q", "--initial-branch=main", cwd=source)
        (source / "blob").write_bytes(os.urandom(REPOSITORY_MB * 1024 * 1024))
        (source / "Procfile").write_text("web: python3 -m http.server $PORT\n")  # it builds
        self.git("add", ".", cwd=source)
        self.git("-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qm", "big", cwd=source)
        self.git("push", "-q", self.remote, "main", cwd=source)

    def held_clone(self, destination: Path, hold: Path) -> subprocess.Popen[str]:
        """A clone that stops half-way, once its first MiB is in, while ``hold`` exists."""
        hold.touch()
        proxy = f"ProxyCommand={sys.executable} {PROXY} %h %p {hold}"
        clone = subprocess.Popen(
            ["git", "clone", "-q", self.remote, str(destination)],
            env={**self.env, "GIT_SSH_COMMAND": self.ssh_command("-o", f"'{proxy}'")},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(hold.with_suffix(".reached").exists, 30, "the clone half-way", clone)
        return clone


def _platform(tmp_path: Path) -> Platform:
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "XDG_"))}
    env.update(
        HOME=str(home),
        SLIPWAY_DATA_DIR=str(data),
        SLIPWAY_APPS_DIR=str(apps_dir() / tmp_path.name),
        GIT_CONFIG_NOSYSTEM="1",
    )
    return Platform(home, data, env, free_port(), free_port(), free_port())


def _start(platform: Platform, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*SLIPWAYD, *args], env=platform.env, stdout=output, stderr=subprocess.STDOUT
        )
    platform.processes.append(process)
    return process


def _stop_everything(platform: Platform) -> None:
    pids = {process.pid for process in platform.processes}
    for server in ("api", "gateway"):
        with contextlib.suppress(FileNotFoundError, ValueError):
            pids.add(platform.pid(server))
    for process in [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]:
        for member in [*process.children(recursive=True), process]:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
    for process in platform.processes:
        process.wait()


@pytest.fixture
def standalone(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Platform]:
    """`slipwayd api` and `slipwayd gateway`, each started on its own (the gateway with the
    extra options in the test's parameter, if any)."""
    platform = _platform(tmp_path)
    gateway_options = getattr(request, "param", [])
    ports = ["--http-port", str(platform.http_port)]
    try:
        api = _start(platform, "api", *ports, log=tmp_path / "api.log")
        wait_until(lambda: (platform.data / "api.pid").exists(), 30, "the API", api)
        gateway = _start(
            platform,
            "gateway",
            *ports,
            "--ssh-port",
            str(platform.ssh_port),
            "--rate",
            "1000",
            "--burst",
            "1000",
            "--metrics-port",
            str(platform.metrics_port),
            *gateway_options,
            log=tmp_path / "gateway.log",
        )
        wait_until(lambda: (platform.data / "gateway.pid").exists(), 30, "the gateway", gateway)
        platform.prepare()
        yield platform
    finally:
        _stop_everything(platform)


@dataclass
class Up:
    platform: Platform
    process: subprocess.Popen[bytes]
    output: Path

    def upgrade(self) -> tuple[int, int]:
        """HUP `slipwayd up`; wait until it has upgraded the API and then the gateway (or
        reported a failure); return their PIDs."""
        done = self.output.read_text().count("gateway  upgrade")
        self.process.send_signal(signal.SIGHUP)
        wait_until(
            lambda: self.output.read_text().count("gateway  upgrade") > done,
            60,
            "the upgrade",
            self.process,
        )
        return self.platform.pid("api"), self.platform.pid("gateway")


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    platform = _platform(tmp_path)
    output = tmp_path / "up.out"
    try:
        process = _start(
            platform,
            "up",
            "--http-port",
            str(platform.http_port),
            "--ssh-port",
            str(platform.ssh_port),
            "--router-port",
            str(free_port()),
            "--router-https-port",
            str(free_port()),
            log=output,
        )
        wait_until(lambda: "Slipway is up" in output.read_text(), 60, "slipwayd up", process)
        platform.prepare()
        yield Up(platform, process, output)
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        _stop_everything(platform)


def test_standalone_servers_upgrade_themselves_under_load(standalone: Platform) -> None:
    upgrade_under_load(standalone)


@pytest.fixture
def busy_cpu() -> Iterator[None]:
    """Every core kept busy by a loop beside the test, as on a loaded build machine."""
    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    yield
    for loop in loops:
        loop.kill()
        loop.wait()


@pytest.mark.stress
@pytest.mark.timeout(600)
@pytest.mark.parametrize("attempt", range(30))
def test_upgrades_under_load_with_every_core_busy(
    standalone: Platform, busy_cpu: None, attempt: int
) -> None:
    """No session cut, 30 times in a row, with the CPU starved (pytest -m stress)."""
    upgrade_under_load(standalone)


def upgrade_under_load(platform: Platform) -> None:
    generations = {"api": [platform.pid("api")], "gateway": [platform.pid("gateway")]}
    with (
        Load(platform.ls_remote, threads=2) as git,
        Load(platform.list_apps, threads=2) as http,
        Load(platform.gateway_metrics, threads=1) as metrics,
    ):
        for _ in range(UPGRADES):
            for server, pids in generations.items():
                time.sleep(0.5)
                os.kill(pids[-1], signal.SIGHUP)
                pids.append(platform.wait_for_new(server, pids[-1]))
        time.sleep(0.5)
    assert git.failures == [] and http.failures == [] and metrics.failures == []
    assert len(git.results) > 20 and len(http.results) > 50 and len(metrics.results) > 50
    assert all("refs/heads/main" in refs for refs in git.results)
    assert all("slipway_gateway_open_connections" in text for text in metrics.results)
    assert all(apps == ["hello"] for apps in http.results)
    for pids in generations.values():
        assert len(set(pids)) == UPGRADES + 1
        for old in pids[:-1]:
            wait_until(partial(exited, old), 15, f"pid {old} exits")


def test_up_upgrades_in_place_while_a_long_clone_runs(up: Up, tmp_path: Path) -> None:
    platform = up.platform
    first_gateway = platform.pid("gateway")
    hold = tmp_path / "hold"
    clone = platform.held_clone(tmp_path / "copy", hold)
    with (
        Load(platform.paced_ls_remote, threads=2) as git,
        Load(platform.list_apps, threads=2) as http,
    ):
        pids = [up.upgrade() for _ in range(UPGRADES)]
        time.sleep(0.5)
    assert git.failures == [] and http.failures == []
    assert len(git.results) > 20 and len(http.results) > 50
    assert len({first_gateway, *(gateway for _api, gateway in pids)}) == UPGRADES + 1
    assert len({api for api, _gateway in pids}) == UPGRADES
    assert clone.poll() is None and psutil.pid_exists(first_gateway)  # it drains the clone
    hold.unlink()
    _out, errors = clone.communicate(timeout=60)
    assert clone.returncode == 0, errors
    platform.git("fsck", "--strict", cwd=tmp_path / "copy")
    assert (tmp_path / "copy" / "blob").stat().st_size == REPOSITORY_MB * 1024 * 1024
    wait_until(partial(exited, first_gateway), 15, "the first gateway exits after the clone")


def test_up_keeps_the_old_version_when_the_new_one_cannot_start(up: Up) -> None:
    platform = up.platform
    api, gateway = platform.pid("api"), platform.pid("gateway")
    host_key = platform.data / "gateway" / "ssh_host_ed25519_key"
    good = host_key.read_bytes()
    host_key.write_bytes(b"not a key\n")  # a broken deployment: the new gateway exits
    new_api, same_gateway = up.upgrade()
    assert "gateway  upgrade failed, still serving" in up.output.read_text()
    assert new_api != api and same_gateway == gateway
    assert "refs/heads/main" in platform.ls_remote()
    assert platform.list_apps() == ["hello"]
    host_key.write_bytes(good)
    _api, new_gateway = up.upgrade()
    assert new_gateway != gateway
    assert "refs/heads/main" in platform.ls_remote()  # the same host key: ssh trusts it


@pytest.mark.parametrize("standalone", [["--max-drain", "1"]], indirect=True)
def test_a_session_longer_than_the_drain_limit_is_told_why_it_ends(
    standalone: Platform,
) -> None:
    platform = standalone
    # git-upload-pack shows the refs, then waits for the client: an idle session.
    session = subprocess.Popen(
        [
            *platform.ssh_command().split(),
            "-p",
            str(platform.ssh_port),
            "git@127.0.0.1",
            "git-upload-pack 'hello.git'",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert session.stdout is not None
    assert b"refs/heads/main" in session.stdout.readline()
    old = platform.pid("gateway")
    os.kill(old, signal.SIGHUP)
    platform.wait_for_new("gateway", old)
    assert session.wait(20) != 0  # its stdin still open: the gateway ended it
    assert session.stderr is not None
    errors = session.stderr.read()
    assert b"the gateway is restarting and this session ran too long; try again" in errors
    wait_until(partial(exited, old), 15, "the old gateway exits")
    assert "refs/heads/main" in platform.ls_remote()

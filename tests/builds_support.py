"""A whole platform (`slipwayd up`) for build tests, and a user who pushes to it with
OpenSSH's git: the path every push takes in production."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from slipway.applog.stream import stream_key
from slipway.host.ports import free_port
from slipway.jobs.connection import sync_redis
from slipway.wire.deployment_states import RUNNING, STARTING
from tests import sample_server
from tests.services import apps_dir, wait_until

SLIPWAYD = [sys.executable, "-m", "slipway.daemon"]
SLIPWAY = str(Path(sys.executable).parent / "slipway")
SAMPLE_APPS = Path(__file__).parent / "apps"
BUILD_TIMEOUT = 40  # seconds: the platform's limit in these tests


def server(version: str) -> str:
    """A web app's code that answers ``GREETING VERSION pid=PID`` (GREETING: its config)."""
    return sample_server.source(version)


def web_app(version: str) -> dict[str, str]:
    """The files of an app made of ``server(version)``: no build step, ready at once."""
    return {"Procfile": "web: python3 server.py\n", "server.py": server(version)}


@dataclass
class Platform:
    root: Path
    settings: dict[str, str] = field(default_factory=dict)
    router_port: int = 0  # 0: a free one (set it when a peer must know it beforehand)

    @property
    def apps_domain(self) -> str:
        return self.settings.get("SLIPWAY_APPS_DOMAIN", "localhost")

    def start(self) -> None:
        self.data = self.root / "data"
        self.home = self.root / "home"
        self.home.mkdir()
        # App users (when the tests run as root) reach their files through here.
        self.apps_dir = Path(tempfile.mkdtemp(prefix="slipway-test-apps-", dir=apps_dir()))
        self.apps_dir.chmod(0o711)
        self.http_port, self.ssh_port = free_port(), free_port()
        self.router_port = self.router_port or free_port()
        self.https_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "XDG_"))}
        env.update(
            HOME=str(self.home),
            SLIPWAY_DATA_DIR=str(self.data),
            SLIPWAY_APPS_DIR=str(self.apps_dir),
            SLIPWAY_BUILD_TIMEOUT=str(BUILD_TIMEOUT),
            GIT_CONFIG_NOSYSTEM="1",
        )
        env.update(self.settings)
        self.env = env
        self.launch()
        self.token = self.run(*SLIPWAYD, "admin", "create-user", "alice", "--admin").strip()
        self.api_url = f"http://127.0.0.1:{self.http_port}"
        self.run(SLIPWAY, "login", "--api-url", self.api_url, "--token", self.token)
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700)
        self.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "id_ed25519"))
        self.run(SLIPWAY, "keys", "add")
        host_key = (self.data / "gateway" / "ssh_host_ed25519_key.pub").read_text().split()
        (ssh / "known_hosts").write_text(
            f"[127.0.0.1]:{self.ssh_port} {host_key[0]} {host_key[1]}\n"
        )
        # ssh finds ~/.ssh through the password database, not $HOME: name the files.
        env["GIT_SSH_COMMAND"] = (
            f"ssh -o UserKnownHostsFile={ssh / 'known_hosts'} -o BatchMode=yes "
            f"-i {ssh / 'id_ed25519'} -o IdentitiesOnly=yes"
        )

    def launch(self) -> None:
        """``slipwayd up``, until it says it runs."""
        self.up = subprocess.Popen(
            [
                *(*SLIPWAYD, "up", "--http-port", str(self.http_port)),
                *("--ssh-port", str(self.ssh_port), "--router-port", str(self.router_port)),
                *("--router-https-port", str(self.https_port)),
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.up.stdout is not None
        for line in self.up.stdout:
            if line.startswith("  5."):
                break

    def restart(self) -> None:
        """Stop ``slipwayd up`` (Ctrl-C) and start it again on the same data."""
        self.up.send_signal(signal.SIGINT)
        assert self.up.wait(30) == 0
        self.launch()

    def upgrade(self) -> None:
        """HUP to ``slipwayd up``: every server upgrades in place; returns once the last one
        (the gateway) has."""
        os.kill(self.up.pid, signal.SIGHUP)
        assert self.up.stdout is not None
        for line in self.up.stdout:
            assert "upgrade failed" not in line
            if line.startswith("  gateway  upgraded"):
                return

    def stop(self) -> None:
        """Destroy every app first: their slugs, caches and Unix users go too."""
        if self.up.poll() is None:
            for app in json.loads(self.run(SLIPWAY, "apps", "list", "--json")):
                self.run(SLIPWAY, "apps", "destroy", "--yes", "-a", app["name"], check=False)
            slugs = self.data / "slugs"
            deadline = time.monotonic() + 30
            while any(slugs.glob("*/*")) and time.monotonic() < deadline:
                time.sleep(0.2)
        self.up.send_signal(signal.SIGINT)
        try:
            self.up.wait(30)
        finally:
            if self.up.poll() is None:
                self.up.kill()
            shutil.rmtree(self.apps_dir, ignore_errors=True)

    def run(self, *argv: str, cwd: Path | None = None, check: bool = True) -> str:
        result = subprocess.run(
            argv, cwd=cwd or self.home, env=self.env, capture_output=True, text=True, timeout=120
        )
        if check:
            assert result.returncode == 0, f"{argv}: {result.stderr}"
        return result.stdout

    def new_app(
        self, name: str, sample: str | None = None, files: dict[str, str] | None = None
    ) -> Path:
        """An app and its repository (a sample from tests/apps, and/or ``files``), committed."""
        directory = self.home / name
        if sample:
            shutil.copytree(SAMPLE_APPS / sample, directory)
        else:
            directory.mkdir()
        self.run("git", "init", "-q", "--initial-branch=main", cwd=directory)
        self.commit(directory, files or {}, "first")
        self.run(SLIPWAY, "apps", "create", name, cwd=directory)
        return directory

    def commit(self, directory: Path, files: dict[str, str], message: str = "change") -> str:
        for path, text in files.items():
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            (directory / path).write_text(text)
        self.run("git", "add", "-A", cwd=directory)
        self.run(
            "git",
            "-c",
            "user.name=a",
            "-c",
            "user.email=a@a",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
            cwd=directory,
        )
        return self.run("git", "rev-parse", "HEAD", cwd=directory).strip()

    def push(self, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "push", "slipway", *(args or ("main",))],
            cwd=directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT + 60,
        )

    def get(self, path: str) -> Any:
        response = httpx.get(
            f"{self.api_url}{path}", headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def call(self, method: str, path: str, body: Any, expect: int | None = None) -> Any:
        """An API call as alice; its JSON answer (checked to have status ``expect``, else
        to be a success)."""
        response = httpx.request(
            method,
            f"{self.api_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        if expect is None:
            response.raise_for_status()
        else:
            assert response.status_code == expect, response.text
        return response.json() if response.content else None

    def deployments(self, app: str) -> list[dict[str, Any]]:
        return list(self.get(f"/v1/apps/{app}/deployments")["items"])

    def releases(self, app: str) -> list[dict[str, Any]]:
        return list(self.get(f"/v1/apps/{app}/releases")["items"])

    def uid(self, app: str) -> str:
        with sqlite3.connect(self.data / "slipway.db") as db:
            row = db.execute("SELECT uid FROM apps WHERE name = ?", (app,)).fetchone()
        return str(row[0])

    def slugs(self, app: str) -> list[Path]:
        return sorted((self.data / "slugs" / self.uid(app)).glob("*.tar.gz"))

    def slug_of(self, app: str, version: int) -> list[str]:
        """The paths in the slug of release ``version``."""
        with sqlite3.connect(self.data / "slipway.db") as db:
            row = db.execute(
                "SELECT slug_id FROM releases JOIN apps ON apps.id = releases.app_id "
                "WHERE apps.name = ? AND version = ?",
                (app, version),
            ).fetchone()
        path = self.data / "slugs" / self.uid(app) / f"{row[0]}.tar.gz"
        with tarfile.open(path) as slug:
            return [name.removeprefix("./") for name in slug.getnames()]

    def remote_head(self, directory: Path, branch: str = "main") -> str | None:
        out = self.run("git", "ls-remote", "slipway", f"refs/heads/{branch}", cwd=directory)
        return out.split()[0] if out.strip() else None

    def wait_for_status(self, app: str, deployment_id: int, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = self.get(f"/v1/apps/{app}/deployments/{deployment_id}")
            if found["status"] not in (*RUNNING, STARTING) or time.monotonic() > deadline:
                return str(found["status"])
            time.sleep(0.2)

    def app_log(self, app: str) -> list[dict[str, str]]:
        """The app's log stream, oldest first, as the runner wrote it."""
        connection = sync_redis(f"unix://{self.data / 'redis' / 'redis.sock'}")
        try:
            entries: Any = connection.xrange(stream_key(self.uid(app)))
        finally:
            connection.close()
        return [
            {key.decode(): value.decode() for key, value in fields.items()} for _, fields in entries
        ]

    def wait_for_log(self, app: str, text: str, timeout: float = 30) -> dict[str, str]:
        """The first line of the app's log that contains ``text``, once there is one."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.app_log(app):
                if text in line["m"]:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the log of {app}")
            time.sleep(0.1)

    def answers(self, app: str, text: str, timeout: float = 60, path: str = "/") -> str:
        """Wait until the app answers ``path`` with ``text`` in its body; the body."""
        found = ""

        def check() -> bool:
            nonlocal found
            try:
                response = self.visit(app, path)
            except httpx.HTTPError:
                return False
            found = response.text
            return response.status_code == 200 and text in found

        wait_until(check, timeout, f"{app} to answer {text!r} (last: {found!r})")
        return found

    def visit(self, app: str, path: str = "/") -> httpx.Response:
        """The app, through the router, as a browser reaches it at http://APP.localhost/."""
        return httpx.get(
            f"http://127.0.0.1:{self.router_port}{path}",
            headers={"Host": f"{app}.{self.apps_domain}:{self.router_port}"},
            timeout=30,
        )

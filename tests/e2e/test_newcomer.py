"""The README's path for a newcomer, on `slipwayd up`: create a user, log in, add a key,
create an app inside a git repository, push it (it builds a release), and clone it back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from slipway.host.ports import free_port
from tests.services import apps_dir

SLIPWAYD = [sys.executable, "-m", "slipway.daemon"]
SLIPWAY = str(Path(sys.executable).parent / "slipway")


def test_from_up_to_git_push(tmp_path: Path) -> None:
    data, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    http_port, ssh_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "XDG_"))}
    env.update(
        HOME=str(home),
        SLIPWAY_DATA_DIR=str(data),
        SLIPWAY_APPS_DIR=str(apps_dir() / "newcomer"),
        GIT_CONFIG_NOSYSTEM="1",
    )
    up = subprocess.Popen(
        [
            *(*SLIPWAYD, "up", "--http-port", str(http_port), "--ssh-port", str(ssh_port)),
            *("--router-port", str(free_port()), "--router-https-port", str(free_port())),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert up.stdout is not None
        for line in up.stdout:
            if line.startswith("  5."):
                break

        def run(*argv: str, cwd: Path = home) -> str:
            result = subprocess.run(
                argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, f"{argv}: {result.stderr}"
            return result.stdout

        token = run(*SLIPWAYD, "admin", "create-user", "alice", "--admin").strip()
        run(SLIPWAY, "login", "--api-url", f"http://127.0.0.1:{http_port}", "--token", token)
        (home / ".ssh").mkdir(mode=0o700)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / ".ssh" / "id_ed25519"))
        run(SLIPWAY, "keys", "add")
        app = home / "hello"
        app.mkdir()
        run("git", "init", "-q", "--initial-branch=main", cwd=app)
        (app / "Procfile").write_text("web: python3 -m http.server $PORT\n")
        run("git", "add", ".", cwd=app)
        run("git", "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qm", "hello", cwd=app)
        run(SLIPWAY, "apps", "create", "hello", cwd=app)
        host_key = (data / "gateway" / "ssh_host_ed25519_key.pub").read_text().split()
        known_hosts = home / ".ssh" / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{ssh_port} {host_key[0]} {host_key[1]}\n")
        # ssh finds ~/.ssh through the password database, not $HOME: name the files.
        env["GIT_SSH_COMMAND"] = (
            f"ssh -o UserKnownHostsFile={known_hosts} -o BatchMode=yes "
            f"-i {home / '.ssh' / 'id_ed25519'} -o IdentitiesOnly=yes"
        )
        pushed = subprocess.run(
            ["git", "push", "slipway", "main"], cwd=app, env=env, capture_output=True, text=True
        )
        assert pushed.returncode == 0, pushed.stderr
        assert "remote: -----> Procfile app detected" in pushed.stderr
        assert "remote: -----> Released v1" in pushed.stderr
        run("git", "clone", "-q", f"ssh://git@127.0.0.1:{ssh_port}/hello.git", str(home / "copy"))
        assert (home / "copy" / "Procfile").read_text() == (app / "Procfile").read_text()
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0

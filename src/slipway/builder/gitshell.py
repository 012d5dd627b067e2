"""git-shell: serves one git command on the host that holds the repositories.

Run by the gateway (as a local subprocess, or over SSH on a repo host) with the canonical
command ``VERB APP``. It validates both again, creates the bare repository on the first push,
and replaces itself with git, with fixed arguments and a clean environment. It imports only
the standard library, so it starts in a few tens of milliseconds.

    python -I -m slipway.builder.gitshell [--data-dir DIR] VERB APP
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

VERBS = {
    "git-receive-pack": "receive-pack",
    "git-upload-pack": "upload-pack",
    "git-upload-archive": "upload-archive",
}
APP_NAME = re.compile(r"[a-z][a-z0-9-]{1,46}[a-z0-9]")
GIT_PROTOCOL = re.compile(r"version=[0-9]")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class ShellError(Exception):
    pass


def data_dir(argv: list[str]) -> tuple[Path, list[str]]:
    if len(argv) >= 2 and argv[0] == "--data-dir":
        return Path(argv[1]), argv[2:]
    configured = os.environ.get("SLIPWAY_DATA_DIR")
    if configured:
        return Path(configured), argv
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "slipway", argv


def clean_environment(home: Path) -> dict[str, str]:
    """What git sees: nothing from the client but a validated GIT_PROTOCOL."""
    env = {
        "PATH": SAFE_PATH,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    protocol = os.environ.get("GIT_PROTOCOL", "")
    if GIT_PROTOCOL.fullmatch(protocol):
        env["GIT_PROTOCOL"] = protocol
    return env


def repository(root: Path, verb: str, app: str) -> Path:
    if verb not in VERBS:
        raise ShellError("only git push and fetch are allowed here")
    if not APP_NAME.fullmatch(app):
        raise ShellError(f"{app!r} is not a repository here")
    repos = root / "repos"
    path = repos / f"{app}.git"
    if not path.is_dir():
        if verb != "git-receive-pack":
            raise ShellError(f"{app} has no code yet: git push to it first")
        repos.mkdir(mode=0o700, parents=True, exist_ok=True)
        created = subprocess.run(
            ["git", "init", "--bare", "--quiet", "--initial-branch=main", str(path)],
            env=clean_environment(root),
            capture_output=True,
            text=True,
        )
        if created.returncode != 0 and not path.is_dir():  # a concurrent first push is fine
            raise ShellError(f"could not create the repository: {created.stderr.strip()}")
    return path


def main(argv: list[str] | None = None) -> int:
    root, words = data_dir(list(sys.argv[1:] if argv is None else argv))
    if len(words) != 2:
        print("slipway: usage: git-shell VERB APP", file=sys.stderr)
        return 2
    verb, app = words
    try:
        path = repository(root, verb, app)
    except ShellError as error:
        print(f"slipway: {error}", file=sys.stderr)
        return 1
    env = clean_environment(root)
    argv_git = ["git", VERBS[verb]]
    if verb == "git-upload-pack":
        argv_git.append("--strict")  # the path must be a repository, not a work tree in it
    argv_git.append(str(path))  # absolute: can never be read as an option
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("git", argv_git, env)  # noqa: S606 - fixed argv, clean environment


if __name__ == "__main__":
    sys.exit(main())

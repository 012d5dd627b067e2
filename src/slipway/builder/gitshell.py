"""git-shell: serves one git command on the host that holds the repositories.

Given the canonical command ``VERB APP``, it validates both again, creates the bare
repository on the first push, and runs git with fixed arguments and a clean environment.
Repo hosts run it over SSH (``slipwayd git-shell``, or the quicker
``python -I -m slipway.builder.gitshell``); the gateway's local upstream calls
:func:`git_command` in-process and saves a Python start per session. It imports only what it
must from the standard library, so it starts fast.
"""

from __future__ import annotations

import os
import re
import sys

from slipway.store.names import APP_NAME

VERBS = {
    "git-receive-pack": "receive-pack",
    "git-upload-pack": "upload-pack",
    "git-upload-archive": "upload-archive",
}
GIT_PROTOCOL = re.compile(r"version=[0-9]")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class ShellError(Exception):
    """Shown to the client as ``slipway: MESSAGE``."""


def clean_environment(data_dir: str, git_protocol: str | None) -> dict[str, str]:
    """What git sees: nothing from the client but a validated GIT_PROTOCOL."""
    env = {
        "PATH": SAFE_PATH,
        "HOME": data_dir,
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    if git_protocol and GIT_PROTOCOL.fullmatch(git_protocol):
        env["GIT_PROTOCOL"] = git_protocol
    return env


def git_command(
    data_dir: str, verb: str, app: str, git_protocol: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that serve ``verb`` on ``app``'s repository; creates the
    repository on the first push. ShellError for anything else."""
    if verb not in VERBS:
        raise ShellError("only git push and fetch are allowed here")
    if not APP_NAME.fullmatch(app):
        raise ShellError(f"{app!r} is not a repository here")
    env = clean_environment(data_dir, git_protocol)
    repos = os.path.join(data_dir, "repos")
    path = os.path.join(repos, f"{app}.git")  # absolute: can never be read as an option
    if not os.path.isdir(path):
        if verb != "git-receive-pack":
            raise ShellError(f"{app} has no code yet: git push to it first")
        _create(repos, path, env)
    argv = ["git", VERBS[verb]]
    if verb == "git-upload-pack":
        argv.append("--strict")  # the path must be a repository, not a work tree in it
    return [*argv, path], env


def _create(repos: str, path: str, env: dict[str, str]) -> None:
    import subprocess  # only on a first push: keeps every other start quick

    os.makedirs(repos, mode=0o700, exist_ok=True)
    created = subprocess.run(
        ["git", "init", "--bare", "--quiet", "--initial-branch=main", path],
        env=env,
        capture_output=True,
        text=True,
    )
    if created.returncode != 0 and not os.path.isdir(path):  # a concurrent first push is fine
        raise ShellError(f"could not create the repository: {created.stderr.strip()}")


def default_data_dir() -> str:
    configured = os.environ.get("SLIPWAY_DATA_DIR")
    if configured:
        return configured
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "slipway")


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    data_dir = default_data_dir()
    if len(words) >= 2 and words[0] == "--data-dir":
        data_dir, words = words[1], words[2:]
    if len(words) != 2:
        print("slipway: usage: git-shell [--data-dir DIR] VERB APP", file=sys.stderr)
        return 2
    try:
        argv_git, env = git_command(
            os.path.abspath(data_dir), words[0], words[1], os.environ.get("GIT_PROTOCOL")
        )
    except ShellError as error:
        print(f"slipway: {error}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("git", argv_git, env)  # noqa: S606 - fixed argv, clean environment


if __name__ == "__main__":
    sys.exit(main())

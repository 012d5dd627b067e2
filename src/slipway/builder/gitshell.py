"""git-shell: serves one git command on the host that holds the repositories.

Given the canonical command ``VERB REPOSITORY APP [USER]`` (the repository is the app's uid,
the name only words messages, the user is who pushes), it validates them all again, creates
the bare repository on the first push, and runs git with fixed arguments, a clean
environment and the host's limits. Repo hosts run it over SSH (``slipwayd git-shell``, or
the quicker ``python -I -m slipway.builder.gitshell``); the gateway's local upstream calls
:func:`git_command` in-process and saves a Python start per session. It imports only what it
must from the standard library, so it starts fast.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

from slipway.builder.repositories import (
    REPOSITORY_ID,
    RepoHost,
    disk_usage,
    install_hooks,
    megabytes,
    repository_path,
)
from slipway.store.names import APP_NAME, USER_NAME

VERBS = {
    "git-receive-pack": "receive-pack",
    "git-upload-pack": "upload-pack",
    "git-upload-archive": "upload-archive",
}
GIT_PROTOCOL = re.compile(r"version=[0-9]")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
# Blobs over this size are streamed, never held whole in memory, by index-pack and others:
# a small push of a huge zero-filled file cannot inflate into gigabytes of RAM.
BIG_FILE_THRESHOLD = "16m"


class ShellError(Exception):
    """Shown to the client as ``slipway: MESSAGE``."""


def clean_environment(host: RepoHost, git_protocol: str | None) -> dict[str, str]:
    """What git sees: nothing from the client but a validated GIT_PROTOCOL, plus what this
    host's hooks need to reach the platform."""
    env = {
        "PATH": SAFE_PATH,
        "HOME": host.data_dir,
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        **host.hook_environment(),
    }
    if git_protocol and GIT_PROTOCOL.fullmatch(git_protocol):
        env["GIT_PROTOCOL"] = git_protocol
    return env


@dataclass(frozen=True)
class GitRun:
    """How to run git for one command, and a line to show first (or None)."""

    argv: list[str]
    env: dict[str, str]
    notice: str | None = None


def git_command(
    host: RepoHost,
    verb: str,
    repository: str,
    app: str,
    git_protocol: str | None = None,
    pusher: str | None = None,
) -> GitRun:
    """How to serve ``verb`` on the repository; creates it on the first push. ShellError for
    anything else, or a push the quota leaves no room for. ``pusher`` reaches the hooks."""
    if verb not in VERBS:
        raise ShellError("only git push and fetch are allowed here")
    if not REPOSITORY_ID.fullmatch(repository) or not APP_NAME.fullmatch(app):
        raise ShellError(f"{app!r} is not a repository here")
    if pusher is not None and not USER_NAME.fullmatch(pusher):
        raise ShellError(f"{pusher!r} is not a user name")
    env = clean_environment(host, git_protocol)
    if pusher is not None:
        env["SLIPWAY_PUSHER"] = pusher
    path = repository_path(host.data_dir, repository)  # absolute: never read as an option
    if verb != "git-receive-pack":
        if not os.path.isdir(path):
            raise ShellError(f"{app} has no code yet: git push to it first")
        argv = ["git", "-c", f"core.bigFileThreshold={BIG_FILE_THRESHOLD}", VERBS[verb]]
        if verb == "git-upload-pack":
            argv.append("--strict")  # the path must be a repository, not a work tree in it
        return GitRun([*argv, path], env)
    if not os.path.isdir(path):
        _create(path, env)
    install_hooks(path)
    used = disk_usage(path)
    usage = f"{app}'s repository uses {megabytes(used)} of its {megabytes(host.quota)} quota"
    if used >= host.quota:
        raise ShellError(f"{usage}: push refused. Ask the platform's operator for more room.")
    room = min(host.max_push, host.quota - used)
    notice = (
        f"slipway: {usage}: this push may add {megabytes(room)} at most"
        if (room < host.max_push)
        else None
    )
    argv = [
        "git",
        "-c",
        f"receive.maxInputSize={room}",
        "-c",
        "receive.fsckObjects=true",  # also refuses .gitmodules path tricks
        "-c",
        "receive.unpackLimit=1",  # keep every push as a pack: clones reuse it as is
        "-c",
        "receive.autoGc=false",  # housekeeping is a job of its own (builder.housekeeping)
        "-c",
        f"core.bigFileThreshold={BIG_FILE_THRESHOLD}",
        "receive-pack",
        path,
    ]
    return GitRun(argv, env, notice)


def _create(path: str, env: dict[str, str]) -> None:
    import subprocess  # only on a first push: keeps every other start quick

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    created = subprocess.run(
        ["git", "init", "--bare", "--quiet", "--initial-branch=main", path],
        env=env,
        capture_output=True,
        text=True,
    )
    if created.returncode != 0 and not os.path.isdir(path):  # a concurrent first push is fine
        raise ShellError(f"could not create the repository: {created.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    data_dir = None
    if len(words) >= 2 and words[0] == "--data-dir":
        data_dir, words = words[1], words[2:]
    if len(words) not in (3, 4):
        print(
            "slipway: usage: git-shell [--data-dir DIR] VERB REPOSITORY APP [USER]",
            file=sys.stderr,
        )
        return 2
    host = RepoHost.from_environ(data_dir)
    verb, repository, app = words[:3]
    pusher = words[3] if len(words) == 4 else None
    try:
        run = git_command(host, verb, repository, app, os.environ.get("GIT_PROTOCOL"), pusher)
    except ShellError as error:
        print(f"slipway: {error}", file=sys.stderr)
        return 1
    if run.notice:
        print(run.notice, file=sys.stderr)
    host.limit_memory()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("git", run.argv, run.env)  # noqa: S606 - fixed argv, clean environment


if __name__ == "__main__":
    sys.exit(main())

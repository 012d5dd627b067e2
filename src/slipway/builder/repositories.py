"""Repositories on a repo host: where they are, their limits, their hooks.

A repository is named by its app's uid (random, never reused), not by the app's name: a
destroyed app's code can never be served to whoever takes the name next. Standard library
only, so that git-shell and hooks start fast.
"""

from __future__ import annotations

import os
import re
import resource
import shlex
import sys
from contextlib import suppress
from dataclasses import dataclass

REPOSITORY_ID = re.compile(r"[0-9a-f]{32}")
MB = 1024 * 1024

# Jobs a repo host's worker runs (slipway.builder.jobs), on the queue of that host.
DELETE_REPOSITORY = "slipway.delete_repository"
DELETE_RETRIES = 10  # over about a day and a half, with Sidekiq's backoff
HOUSEKEEP_REPOSITORY = "slipway.housekeep_repository"


BUILD = "slipway.build"

# Settings hooks read like the worker does (slipway.config), when this host has them.
PASSED_TO_HOOKS = (
    "SLIPWAY_INTERNAL_SECRET",
    "SLIPWAY_APPS_DIR",
    "SLIPWAY_SLUG_MAX_MB",
)


def repo_queue(host: str) -> str:
    """The job queue of the repo host the API calls ``host`` ("local", "user@host:port")."""
    return "repos-" + re.sub(r"[^a-z0-9.-]+", "-", host.lower())


def default_data_dir() -> str:
    configured = os.environ.get("SLIPWAY_DATA_DIR")
    if configured:
        return configured
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "slipway")


def _megabytes_from_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) * MB if value else default * MB


@dataclass(frozen=True)
class RepoHost:
    """This host's repositories and the limits of every push to them."""

    data_dir: str
    quota: int = 1024 * MB  # a repository's size on disk
    max_push: int = 512 * MB  # one push's pack
    git_memory: int = 1024 * MB  # heap of each git process (RLIMIT_DATA)
    name: str = "local"  # this host, as the API names it (SLIPWAY_REPO_HOST)
    redis_url: str | None = None  # where hooks enqueue jobs; None: no builds, no housekeeping
    api_url: str | None = None  # where hooks open deployments; None: pushes do not build

    @classmethod
    def from_environ(cls, data_dir: str | None = None) -> RepoHost:
        """A repo host reached over SSH: its settings are its SLIPWAY_* variables."""
        return cls(
            data_dir=os.path.abspath(data_dir or default_data_dir()),
            quota=_megabytes_from_env("SLIPWAY_REPO_QUOTA_MB", 1024),
            max_push=_megabytes_from_env("SLIPWAY_MAX_PUSH_MB", 512),
            git_memory=_megabytes_from_env("SLIPWAY_GIT_MEMORY_MB", 1024),
            name=os.environ.get("SLIPWAY_REPO_HOST") or "local",
            redis_url=os.environ.get("SLIPWAY_REDIS_URL") or None,
            api_url=os.environ.get("SLIPWAY_API_URL") or None,
        )

    def hook_environment(self) -> dict[str, str]:
        env = {"SLIPWAY_DATA_DIR": self.data_dir, "SLIPWAY_REPO_HOST": self.name}
        if self.redis_url:
            env["SLIPWAY_REDIS_URL"] = self.redis_url
        if self.api_url:
            env["SLIPWAY_API_URL"] = self.api_url
        for name in PASSED_TO_HOOKS:
            if os.environ.get(name):
                env[name] = os.environ[name]
        return env

    def limit_memory(self, pid: int = 0) -> None:
        """Cap the heap of git (``pid``, or this process before it execs git). Packs are
        mapped read-only, which RLIMIT_DATA does not count, so big clones still work."""
        limit = (self.git_memory, self.git_memory)
        if pid:
            resource.prlimit(pid, resource.RLIMIT_DATA, limit)
        else:
            resource.setrlimit(resource.RLIMIT_DATA, limit)


def repository_path(data_dir: str, repository: str) -> str:
    if not REPOSITORY_ID.fullmatch(repository):
        raise ValueError(f"not a repository id: {repository!r}")
    return os.path.join(data_dir, "repos", f"{repository}.git")


def megabytes(size: int) -> str:
    return f"{size / MB:.0f} MB" if size >= 10 * MB else f"{size / MB:.1f} MB"


def disk_usage(path: str) -> int:
    """Bytes of the repository's objects (what pushes add to)."""
    total = 0
    for directory, _, files in os.walk(os.path.join(path, "objects")):
        for name in files:
            with suppress(FileNotFoundError):  # packed or pruned meanwhile
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


HOOKS = ("pre-receive", "post-receive")


def hook_script(hook: str) -> str:
    """The hook git runs: our Python, in isolated mode, with a fixed module."""
    return (
        "#!/bin/sh\n"
        "# Installed by Slipway on every push; changes here are overwritten.\n"
        f"exec {shlex.quote(sys.executable)} -I -m slipway.builder.hooks {hook}\n"
    )


def install_hooks(path: str) -> None:
    """Write our hooks when missing or different (a moved virtualenv, a newer Slipway)."""
    hooks = os.path.join(path, "hooks")
    for hook in HOOKS:
        wanted = hook_script(hook)
        target = os.path.join(hooks, hook)
        try:
            with open(target) as file:
                if file.read() == wanted:
                    continue
        except FileNotFoundError:
            pass
        os.makedirs(hooks, mode=0o700, exist_ok=True)
        temporary = f"{target}.{os.getpid()}.tmp"
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700), "w") as file:
            file.write(wanted)
        os.replace(temporary, target)


def adopt_named_repositories(data_dir: str, uids: dict[str, str]) -> list[str]:
    """Rename repositories of an earlier version (``repos/NAME.git``) to their app's uid.

    Only for apps that exist (``uids``: name to uid); a name whose app was destroyed keeps
    its directory, unserved. Returns the names adopted."""
    repos = os.path.join(data_dir, "repos")
    adopted = []
    for name, uid in uids.items():
        old, new = os.path.join(repos, f"{name}.git"), repository_path(data_dir, uid)
        if os.path.isdir(old) and not os.path.exists(new):
            os.rename(old, new)
            adopted.append(name)
    return adopted

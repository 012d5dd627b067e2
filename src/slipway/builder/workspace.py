"""One build's directories, and reading the pushed tree safely: a privileged worker must
never follow the app's symbolic links. A ``BuildFailed`` ends the build with its status."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from slipway.host.appuser import AppUser, give_to, traversable_dir
from slipway.wire.deployment_states import ABORTED, BUILD_ERROR


class BuildFailed(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Workspace:
    """One build's directories: the tree (``app``), config vars (``env``), a home and a
    temporary directory; the app's cache lives on between builds."""

    root: Path
    cache: Path

    @property
    def app(self) -> Path:
        return self.root / "app"

    @property
    def env(self) -> Path:
        return self.root / "env"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def prepare(self, config: dict[str, str], user: AppUser | None) -> None:
        if not self.app.is_dir():
            raise BuildFailed(ABORTED, "the pushed tree is gone (the push was cancelled)")
        traversable_dir(self.root)
        for directory in (self.env, self.home, self.tmp, self.cache):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, value in config.items():
            path = self.env / name  # names are checked by the store: [A-Z_][A-Z0-9_]*
            path.write_text(value)
            path.chmod(0o600)
        for directory in (self.app, self.env, self.home, self.tmp):
            give_to(directory, user)
        if user is not None and os.stat(self.cache).st_uid != user.uid:
            give_to(self.cache, user)


def read_app_file(path: Path, limit: int = 64 * 1024) -> str | None:
    """A file of the app's tree, read safely by a privileged worker: never through a
    symbolic link (it could point at the host's secrets), only a regular file, bounded."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        raise BuildFailed(BUILD_ERROR, f"{path.name} must be a regular file") from None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise BuildFailed(BUILD_ERROR, f"{path.name} must be a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise BuildFailed(BUILD_ERROR, f"{path.name} is over {limit // 1024} KB")
    return data.decode(errors="replace")

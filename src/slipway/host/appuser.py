"""The Unix user an app's code runs as, and the directory its files live in.

Run as root, Slipway gives each app a system user of its own (``slipway-`` and the start of
the app's uid): builds and, later, processes of one app cannot read or signal another's, or
the platform's. Run as anyone else, it cannot switch users, and builds run as that user.

App users must reach their files, so these live in a directory every user may traverse (but
not list): ``DATA_DIR/apps`` when the data dir's parents allow it, else a directory under
/var/lib named after the data dir (a data dir in root's home, say).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "slipway-"
USER_ID_CHARS = 20  # of the app's uid: "slipway-" + 20 = 28 characters, under useradd's 32
FALLBACK_ROOT = Path("/var/lib/slipway-apps")


@dataclass(frozen=True)
class AppUser:
    name: str
    uid: int
    gid: int


def user_name(app_uid: str) -> str:
    return PREFIX + app_uid[:USER_ID_CHARS]


def can_switch_users() -> bool:
    return os.geteuid() == 0


def ensure_app_user(app_uid: str) -> AppUser | None:
    """The app's user, created on first use; None when we cannot switch users."""
    if not can_switch_users():
        return None
    name = user_name(app_uid)
    for attempt in range(10):
        try:
            entry = pwd.getpwnam(name)
            return AppUser(name, entry.pw_uid, entry.pw_gid)
        except KeyError:
            pass
        created = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                f"Slipway app {app_uid}",
                name,
            ],
            capture_output=True,
            text=True,
        )
        if created.returncode not in (0, 9):  # 9: it exists (a concurrent build made it)
            # 10: /etc/passwd is locked by another useradd: try again in a moment.
            if created.returncode != 10 or attempt == 9:
                raise OSError(f"cannot create the user {name}: {created.stderr.strip()}")
            time.sleep(0.2)
    entry = pwd.getpwnam(name)
    return AppUser(name, entry.pw_uid, entry.pw_gid)


def run_as(user: AppUser | None) -> dict[str, Any]:
    """subprocess.Popen's arguments that run a command as ``user`` (none without users)."""
    if user is None:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def remove_app_user(app_uid: str) -> None:
    """OSError while the user still runs processes (the runner stops them first): the job
    that asks is retried."""
    if not can_switch_users():
        return
    removed = subprocess.run(["userdel", user_name(app_uid)], capture_output=True, text=True)
    if removed.returncode not in (0, 6):  # 6: no such user (gone already)
        raise OSError(f"cannot remove the user {user_name(app_uid)}: {removed.stderr.strip()}")


def _searchable_by_all(path: Path) -> bool:
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [path, *path.parents])


def apps_root(data_dir: Path, configured: Path | None = None) -> Path:
    """Where app users' files live (builds, caches); made traversable, not listable."""
    if configured is not None:
        root = configured
    elif not can_switch_users() or _searchable_by_all(data_dir.parent):
        root = data_dir / "apps"
    else:
        digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
        root = FALLBACK_ROOT / digest
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if can_switch_users():
        # Ours to open for traversal: the root and the directories we made on the way to
        # it, never a parent of a directory the operator chose.
        for path in (root,) if configured is not None else (root, *root.parents):
            if path == data_dir.parent or path == Path("/"):
                break
            info = os.stat(path)
            if info.st_uid == 0 and not info.st_mode & stat.S_IXOTH:
                os.chmod(path, stat.S_IMODE(info.st_mode) | 0o711)  # noqa: S103 - traverse only
    return root


def traversable_dir(path: Path) -> Path:
    """A directory of ours that app users may pass through to theirs, not list."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if can_switch_users():
        os.chmod(path, 0o711)  # noqa: S103 - traverse only
    return path


def give_to(path: Path, user: AppUser | None) -> None:
    """Make ``path`` and everything under it the app user's (a no-op without app users).

    Bottom-up, the top last: until a directory is the user's, nothing in it can be swapped
    for a link by the user's processes, so root never follows one of theirs."""
    if user is None:
        return
    for directory, dirs, files in os.walk(path, topdown=False):
        for name in dirs + files:
            os.lchown(os.path.join(directory, name), user.uid, user.gid)
    os.lchown(path, user.uid, user.gid)


def copy_for_app_users(source: Path, root: Path) -> Path:
    """``source`` (a file or a directory of our own, such as uv or the buildpacks) where app
    users can reach it: the place itself when they can, else a copy under ``root``, made
    aside and renamed into place (builds running meanwhile keep the copy they use), one per
    version of the source."""
    if not can_switch_users() or _searchable_by_all(source.parent):
        return source
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    version = hashlib.sha256(
        "".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files).encode()
    ).hexdigest()[:12]
    tools = traversable_dir(root / "tools")
    target = tools / f"{source.name}-{version}" / source.name
    if target.exists():
        return target
    staging = Path(tempfile.mkdtemp(dir=tools))
    # Public code, readable and runnable by every app user (noqa: S103 below).
    if source.is_dir():
        shutil.copytree(source, staging / source.name)
    else:
        shutil.copy2(source, staging / source.name)
    for directory, _, names in os.walk(staging):
        os.chmod(directory, 0o755)  # noqa: S103
        for name in names:
            os.chmod(os.path.join(directory, name), 0o755)  # noqa: S103
    try:
        os.rename(staging, target.parent)
    except OSError:  # another build made it first
        shutil.rmtree(staging, ignore_errors=True)
    return target

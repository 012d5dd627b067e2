"""A release's slug unpacked into a directory of its own, by the app's user (root never
writes into a tree the app controls), once: instances of one release share it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from slipway.host.appuser import AppUser, give_to, run_as, traversable_dir


def unpack(root: Path, app_uid: str, version: int, slug: Path, user: AppUser | None) -> Path:
    """``root/APP_UID/vN``, made from ``slug`` unless it is there already."""
    app_dir = traversable_dir(root / app_uid)
    target = app_dir / f"v{version}"
    if target.is_dir():
        return target
    staging = app_dir / f".v{version}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    give_to(staging, user)  # empty: nothing to follow
    with slug.open("rb") as source:
        unpacked = subprocess.run(
            ["tar", "--extract", "--gzip", "--file", "-", "--directory", str(staging)],
            stdin=source,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
            **run_as(user),
        )
    if unpacked.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise OSError(f"cannot unpack the slug of v{version}: {unpacked.stderr.strip()}")
    os.rename(staging, target)
    return target


def prune(root: Path, app_uid: str, keep: set[int]) -> None:
    """Release directories no instance runs from any more."""
    for directory in (root / app_uid).glob("v*"):
        version = directory.name[1:]
        if version.isdigit() and int(version) not in keep:
            shutil.rmtree(directory, ignore_errors=True)

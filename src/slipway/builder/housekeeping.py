"""Keeping repositories fast and small: repack after pushes, remove what aborted pushes left,
delete a destroyed app's repository.

Pushes are kept as packs (``receive.unpackLimit=1``); housekeeping then rolls small packs
into bigger ones geometrically with a multi-pack bitmap, as large git hosts do, so a clone
sends stored data as is instead of compressing every object again. Geometric repacking
only combines existing packs: it never drops an object, so it is safe while a push lands.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from contextlib import suppress

from slipway.host.filelock import exclusive

log = logging.getLogger("slipway.builder")

# A push's quarantine ("tmp_objdir-incoming-*") untouched for this long was aborted.
STALE_QUARANTINE_SECONDS = 3600.0
REPACK = ["git", "repack", "-d", "-q", "--geometric=2", "--write-midx", "--write-bitmap-index"]
LOCK_FILE = "slipway-housekeeping.lock"


def _newest_change(path: str) -> float:
    newest = os.lstat(path).st_mtime
    for directory, _, files in os.walk(path):
        for name in files:
            with suppress(FileNotFoundError):
                newest = max(newest, os.lstat(os.path.join(directory, name)).st_mtime)
    return newest


def remove_stale_quarantines(path: str, older_than: float = STALE_QUARANTINE_SECONDS) -> list[str]:
    """Remove the object directories of pushes that stopped long ago; returns their names."""
    objects = os.path.join(path, "objects")
    removed = []
    deadline = time.time() - older_than
    for entry in os.scandir(objects):
        if not entry.name.startswith("tmp_objdir-incoming-"):
            continue
        if entry.is_dir(follow_symlinks=False) and _newest_change(entry.path) < deadline:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return removed


def housekeep(path: str, env: dict[str, str]) -> None:
    """Repack and tidy one repository (a missing one is fine: its app is gone)."""
    if not os.path.isdir(path):
        return
    with exclusive(os.path.join(path, LOCK_FILE)):  # one at a time per repository
        removed = remove_stale_quarantines(path)
        if removed:
            log.info("removed %d aborted pushes' objects from %s", len(removed), path)
        subprocess.run([*REPACK], cwd=path, env=env, check=True, capture_output=True)
        subprocess.run(
            ["git", "pack-refs", "--all"], cwd=path, env=env, check=True, capture_output=True
        )


def delete(path: str) -> None:
    """Remove a repository. It is renamed first, in one step, so that nothing can serve
    or write into a half-deleted repository."""
    trash = os.path.join(os.path.dirname(path), f".deleted-{os.path.basename(path)}")
    with suppress(FileNotFoundError):  # gone, or renamed by an attempt that failed later
        os.rename(path, trash)
    if os.path.exists(trash):
        shutil.rmtree(trash)

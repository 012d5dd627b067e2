"""A release as a Deploy job runs it, and its slug unpacked into a directory of its own, by
the app's user (root never writes into a tree the app controls), once: instances of one
release share it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.host.appuser import AppUser, give_to, run_as, traversable_dir


class DeployFailed(Exception):
    """The release did not start; ``status`` ends its deployment (``timeout-error``...)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Release:
    """What a Deploy job runs, as the API describes it."""

    app: str
    app_uid: str
    version: int
    slug: Path
    commit: str
    process_types: dict[str, str]
    config: dict[str, str]
    formation: dict[str, int]
    release_command: str | None = None
    first_deploy_command: str | None = None  # app.json's postdeploy, at the first deploy

    @classmethod
    def from_api(cls, answer: dict[str, Any], slugs: Path) -> Release:
        return cls(
            app=answer["app"],
            app_uid=answer["app_uid"],
            version=int(answer["version"]),
            slug=slugs / answer["app_uid"] / f"{answer['slug_id']}.tar.gz",
            commit=answer["commit"],
            process_types=dict(answer["process_types"]),
            config=dict(answer["config"]),
            formation=dict(answer.get("formation") or {"web": 1}),
            release_command=answer.get("release_command"),
            first_deploy_command=answer.get("first_deploy_command"),
        )

    def record(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "slug": str(self.slug)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Release:
        return cls(**{**record, "slug": Path(record["slug"])})


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

"""Deployments: each push of an app's deploy branch, from ``queued`` to a release or an error.

The pre-receive hook opens one (and learns whether the push deploys at all), the build
worker moves it along and ends its build with its log and, on success, its release; the
runner that starts the release says how it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipway.store.errors import Invalid, NotFound
from slipway.store.models import App, Deployment, Release, utcnow
from slipway.store.names import check_branch_name
from slipway.store.releases import Build, release_build
from slipway.wire.deployment_states import (
    ABORTED,
    BUILDING,
    FINISHED,
    QUEUED,
    RUNNING,
    STARTING,
    SUCCESS,
)

DEFAULT_BRANCHES = ("main", "master")
ZERO_COMMIT = "0" * 40
MAX_LOG = 1024 * 1024  # characters of a finished build's log kept in the store


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    old: str
    new: str


@dataclass(frozen=True)
class Push:
    """What a push means for the app: the deployment it starts (or None) and why not."""

    deploy_branch: str | None
    deployment: Deployment | None
    skipped: list[str]  # pushed refs that do not deploy


def _deploy_update(app: App, updates: list[RefUpdate]) -> RefUpdate | None:
    branches = {
        u.ref.removeprefix("refs/heads/"): u for u in updates if u.ref.startswith("refs/heads/")
    }
    if app.deploy_branch is None:
        # The first push of main (else master) makes it the deploy branch, as on Dokku.
        for name in DEFAULT_BRANCHES:
            update = branches.get(name)
            if update is not None and update.new != ZERO_COMMIT:
                app.deploy_branch = name
                return update
        return None
    update = branches.get(app.deploy_branch)
    return update if update is not None and update.new != ZERO_COMMIT else None


def open_deployment(
    session: Session, app: App, updates: list[RefUpdate], pusher: str | None
) -> Push:
    update = _deploy_update(app, updates)
    skipped = [u.ref for u in updates if u is not update]
    if update is None:
        return Push(app.deploy_branch, None, skipped)
    deployment = Deployment(
        app_id=app.id, status=QUEUED, ref=update.ref, commit=update.new, pusher=pusher
    )
    session.add(deployment)
    session.flush()
    return Push(app.deploy_branch, deployment, skipped)


def set_deploy_branch(app: App, branch: str) -> None:
    app.deploy_branch = check_branch_name(branch)


def deployment_by_id(session: Session, deployment_id: int, *, lock: bool = False) -> Deployment:
    """``lock``: until the transaction ends (a worker's success and a hook's abort, at once,
    must not both be recorded)."""
    deployment = session.get(Deployment, deployment_id, with_for_update=lock)
    if deployment is None:
        raise NotFound(f"no deployment {deployment_id}")
    return deployment


def deployment_of(session: Session, app: App, deployment_id: int) -> Deployment:
    deployment = session.get(Deployment, deployment_id)
    if deployment is None or deployment.app_id != app.id:
        raise NotFound(f"{app.name} has no deployment {deployment_id}")
    return deployment


def deployments_of(
    session: Session, app: App, offset: int, limit: int
) -> tuple[list[Deployment], int]:
    base = select(Deployment).where(Deployment.app_id == app.id)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    found = session.scalars(base.order_by(Deployment.id.desc()).offset(offset).limit(limit))
    return list(found), total


def start_building(deployment: Deployment, buildpack: str | None = None) -> None:
    if deployment.status not in RUNNING:
        raise Invalid(f"deployment {deployment.id} has already ended ({deployment.status})")
    deployment.status = BUILDING
    deployment.started_at = deployment.started_at or utcnow()
    if buildpack:
        deployment.buildpack = buildpack[:100]


def finish(
    session: Session,
    deployment: Deployment,
    status: str,
    *,
    error: str | None = None,
    log: str | None = None,
    build: Build | None = None,
    config: dict[str, str] | None = None,
) -> Deployment:
    """End the deployment's build once: a success records its release (with ``config``,
    what the build saw) and the deployment is ``starting``; a second finish (a hook and a
    worker both giving up) changes nothing."""
    if status not in FINISHED:
        raise Invalid(f"not a final status: {status!r}")
    if deployment.status not in RUNNING:
        return deployment
    if (status == SUCCESS) != (build is not None):
        raise Invalid("a successful deployment needs its build, and only it")
    if log is not None:
        deployment.log = log[-MAX_LOG:]
    if build is not None:
        app = session.get(App, deployment.app_id)
        assert app is not None
        release = release_build(session, app, build, config or {}, deployment.pusher, deployment.id)
        deployment.release_version = release.version
        deployment.buildpack = build.buildpack
        deployment.status = STARTING  # until a runner says how the start went
        return deployment
    deployment.status = status
    deployment.error = error
    deployment.finished_at = utcnow()
    return deployment


def record_start(session: Session, app: App, version: int, status: str, error: str | None) -> None:
    """A runner's word on release ``version``: it and the deployment that built it end
    with ``status``; older ones still starting never will (a newer release replaced
    them)."""
    if status not in FINISHED:
        raise Invalid(f"not a final status: {status!r}")
    releases = session.scalars(
        select(Release)
        .where(Release.app_id == app.id, Release.status == STARTING)
        .where(Release.version <= version)
    )
    for release in releases:
        release.status = status if release.version == version else ABORTED
    starting = session.scalars(
        select(Deployment)
        .where(Deployment.app_id == app.id, Deployment.status == STARTING)
        .where(Deployment.release_version <= version)
        .with_for_update()
    )
    for deployment in starting:
        if deployment.release_version == version:
            deployment.status, deployment.error = status, error
        else:
            deployment.status, deployment.error = ABORTED, f"v{version} was deployed instead"
        deployment.finished_at = utcnow()


def abort_unfinished(session: Session, reason: str) -> int:
    """End every deployment still queued or building (their builders are known to be gone,
    e.g. when the embedded platform starts); how many there were."""
    found = list(session.scalars(select(Deployment).where(Deployment.status.in_(RUNNING))))
    for deployment in found:
        finish(session, deployment, ABORTED, error=reason)
    return len(found)


def duration(deployment: Deployment) -> float | None:
    end: datetime | None = deployment.finished_at
    if deployment.started_at is None or end is None:
        return None
    return (end - deployment.started_at).total_seconds()

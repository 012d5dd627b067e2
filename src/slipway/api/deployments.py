"""``/v1/apps/{app}``: deployments (with their build logs, live or kept), releases and
rollbacks, and the app's deploy branch."""

from __future__ import annotations

import json
from collections.abc import Iterator

import redis
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from slipway.api import runners
from slipway.api.auth import CurrentCaller, Db
from slipway.api.errors import ApiError
from slipway.api.public import PageNumber, PerPage, app_out
from slipway.api.schemas import (
    AppChange,
    AppOut,
    DeploymentOut,
    Page,
    RecordId,
    ReleaseOut,
    RollbackIn,
)
from slipway.builder.buildlog import BuildLog
from slipway.builder.layout import slugs_dir
from slipway.store import apps, deployments, releases
from slipway.store.apps import Action
from slipway.store.errors import Conflict
from slipway.store.models import Deployment, Release
from slipway.wire.deployment_states import RUNNING

router = APIRouter(prefix="/v1/apps/{app}", tags=["deployments"])

FOLLOW_POLL = 2.0  # seconds between checks that a follower is still there


def deployment_out(deployment: Deployment) -> DeploymentOut:
    return DeploymentOut(
        id=deployment.id,
        status=deployment.status,
        ref=deployment.ref,
        commit=deployment.commit,
        pusher=deployment.pusher,
        buildpack=deployment.buildpack,
        error=deployment.error,
        release_version=deployment.release_version,
        created_at=deployment.created_at,
        started_at=deployment.started_at,
        finished_at=deployment.finished_at,
        duration=deployments.duration(deployment),
    )


def release_out(release: Release) -> ReleaseOut:
    return ReleaseOut(
        version=release.version,
        description=release.description,
        commit=release.commit,
        buildpack=release.buildpack,
        process_types=json.loads(release.process_types),
        release_command=release.release_command,
        first_deploy_command=release.first_deploy_command,
        slug_size=release.slug_size,
        created_by=release.created_by,
        created_at=release.created_at,
        deployment_id=release.deployment_id,
        build_seconds=release.build_seconds,
        status=release.status,
    )


@router.patch("", tags=["apps"])
def change_app(
    request: Request, db: Db, caller: CurrentCaller, app: str, body: AppChange
) -> AppOut:
    """Change the app's settings: its deploy branch."""
    with db.session() as session:
        user = caller.user(session)
        found = apps.app_for(session, user, app, Action.ADMIN)
        if body.deploy_branch is not None:
            deployments.set_deploy_branch(found, body.deploy_branch)
        return app_out(request, session, found, user)


@router.get("/deployments")
def list_deployments(
    db: Db, caller: CurrentCaller, app: str, page: PageNumber = 1, per_page: PerPage = 20
) -> Page[DeploymentOut]:
    """The app's deployments, newest first."""
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.READ)
        items, total = deployments.deployments_of(session, found, (page - 1) * per_page, per_page)
        return Page(
            items=[deployment_out(d) for d in items], page=page, per_page=per_page, total=total
        )


@router.get("/deployments/{deployment_id}")
def get_deployment(
    db: Db, caller: CurrentCaller, app: str, deployment_id: RecordId
) -> DeploymentOut:
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.READ)
        return deployment_out(deployments.deployment_of(session, found, deployment_id))


@router.get("/deployments/{deployment_id}/logs")
def deployment_logs(
    request: Request,
    db: Db,
    caller: CurrentCaller,
    app: str,
    deployment_id: RecordId,
    follow: bool = False,
) -> StreamingResponse:
    """The build log as plain text, one line per line. A finished deployment's comes from the
    store; a running one's from its live stream, and with ``follow`` the response goes on
    until the build ends."""
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.READ)
        deployment = deployments.deployment_of(session, found, deployment_id)
        stored, running = deployment.log or "", deployment.status in RUNNING
        if deployment.release_version:  # as the live stream ends
            stored += f"\n-----> Released v{deployment.release_version}"
    if not running:
        return StreamingResponse(iter([stored.lstrip("\n") + "\n"]), media_type="text/plain")
    jobs = request.app.state.jobs
    if jobs is None:
        raise ApiError(503, "unavailable", "no Redis is configured: live build logs are off")
    output = BuildLog(jobs.redis, deployment_id)
    return StreamingResponse(_live(output, follow), media_type="text/plain")


def _live(output: BuildLog, follow: bool) -> Iterator[str]:
    try:
        if not follow:
            for entry in output.read():
                if entry.line is not None:
                    yield entry.line + "\n"
            return
        for found in output.follow(poll=FOLLOW_POLL):
            if found is not None and found.line is not None:
                yield found.line + "\n"
    except redis.RedisError:
        yield " !     the live log is unavailable (Redis cannot be reached)\n"


@router.get("/releases")
def list_releases(
    db: Db, caller: CurrentCaller, app: str, page: PageNumber = 1, per_page: PerPage = 20
) -> Page[ReleaseOut]:
    """The app's releases, newest first."""
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.READ)
        items, total = releases.releases_of(session, found, (page - 1) * per_page, per_page)
        return Page(
            items=[release_out(r) for r in items], page=page, per_page=per_page, total=total
        )


@router.post("/rollback", status_code=201)
def rollback(
    request: Request, db: Db, caller: CurrentCaller, app: str, body: RollbackIn
) -> ReleaseOut:
    """Deploy an earlier release again: a new release with its slug and config vars (the
    app's config vars become them), started with no downtime; no build."""
    settings = request.app.state.settings
    with db.session() as session:
        user = caller.user(session)
        found = apps.app_for(session, user, app, Action.WRITE)
        target = releases.release_of(session, found, body.version)
        if not (slugs_dir(settings, found.uid) / f"{target.slug_id}.tar.gz").exists():
            raise Conflict(
                f"the slug of v{body.version} is gone: the newest "
                f"{settings.keep_releases} releases keep theirs (SLIPWAY_KEEP_RELEASES)"
            )
        config: dict[str, str] = json.loads(target.config)
        unset: dict[str, str | None] = {
            name: None for name in apps.env_of(session, found) if name not in config
        }
        apps.change_env(session, found, {**unset, **config})
        made = releases.release_rollback(session, found, body.version, user.name)
        answer = release_out(made)
        uid, runner = found.uid, runners.place(request.app, session, found)
        description = f"{made.description} by {user.name}"
    runners.deploy_release(request.app, runner, uid, answer.version, description)
    return answer

"""``/internal``: what edge services (the gateway, repo hosts) ask, with the shared secret.

They hold no user data: every push, fetch and tunnel is decided here.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy import Connection

from slipway.api import runners
from slipway.api.auth import Db, edge_service
from slipway.api.errors import ApiError
from slipway.api.schemas import (
    AccessChangeOut,
    AccessChangesOut,
    AuthorizeIn,
    AuthorizeOut,
    BuildInfoOut,
    CurrentReleasesIn,
    CurrentReleasesOut,
    Destination,
    FinishIn,
    FinishOut,
    KeyOwnerOut,
    ManifestIn,
    PushIn,
    PushOut,
    RecordId,
    ReleaseRunOut,
    Repository,
    RunningReleaseOut,
    SlugId,
    StartedIn,
)
from slipway.builder.layout import slugs_dir
from slipway.store import accounts, addons, apps, deployments, releases
from slipway.store.apps import Action
from slipway.store.changes import changes_since
from slipway.store.formation import formation_of
from slipway.store.models import App, utcnow
from slipway.wire.deployment_states import STARTING

router = APIRouter(prefix="/internal", dependencies=[Depends(edge_service)], tags=["internal"])

# How far back each read of the changes looks: covers transactions that commit out of order
# and clocks a little apart between API hosts.
CHANGES_WINDOW = timedelta(seconds=10)


@router.get("/keys")
async def key_owner(db: Db, fingerprint: Annotated[str, Query(max_length=100)]) -> KeyOwnerOut:
    """Who owns the SSH key with this SHA256 fingerprint (as ``ssh-keygen -l`` prints it)."""
    found = db.read(lambda connection: accounts.key_owner(connection, fingerprint))
    if found is None:
        raise ApiError(404, "not_found", "no such key")
    return KeyOwnerOut(user=found[0], key=found[1], fingerprint=fingerprint)


@router.post("/authorize")
async def authorize(request: Request, db: Db, body: AuthorizeIn) -> AuthorizeOut:
    """May ``user`` push, fetch or tunnel to ``app``? The same answer whether the app is
    missing or forbidden; when allowed, where its repository lives."""
    action = Action(body.action)

    def look_up(connection: Connection) -> tuple[str | None, tuple[str, int] | None]:
        uid = apps.uid_if_allowed(connection, body.user, body.app, action)
        if uid and action is Action.TUNNEL:
            return uid, addons.destination(connection, body.app, body.addon)
        return uid, None

    uid, database = db.read(look_up)
    if uid is None:
        return AuthorizeOut(allowed=False)
    return AuthorizeOut(
        allowed=True,
        repository=Repository(host=request.app.state.settings.repo_host, id=uid),
        database=Destination(host=database[0], port=database[1]) if database else None,
    )


@router.get("/changes")
def access_changes(db: Db, since: datetime | None = None) -> AccessChangesOut:
    """Keys, collaborators and apps removed (and keys added) since ``since``, a little
    before it, so readers must skip the ids they have seen. Without ``since``: none, and
    the time to ask from."""
    now = utcnow()
    if since is None:
        return AccessChangesOut(now=now, changes=[])
    with db.session() as session:
        found = changes_since(session, since - CHANGES_WINDOW)
        return AccessChangesOut(
            now=now,
            changes=[
                AccessChangeOut(
                    id=c.id,
                    kind=c.kind,
                    user=c.user_name,
                    fingerprint=c.fingerprint,
                    app=c.app_name,
                )
                for c in found
            ],
        )


# -- builds, for repo hosts (slipway.builder) ----------------------------------------------


@router.post("/apps/{uid}/deployments")
def open_deployment(db: Db, uid: str, body: PushIn) -> PushOut:
    """A push arrives: which ref deploys (the app's deploy branch), as a new deployment."""
    with db.session() as session:
        app = apps.app_by_uid(session, uid)
        updates = [deployments.RefUpdate(u.ref, u.old, u.new) for u in body.updates]
        push = deployments.open_deployment(session, app, updates, body.pusher)
        found = push.deployment
        return PushOut(
            app=app.name,
            deploy_branch=push.deploy_branch,
            deployment_id=found.id if found else None,
            ref=found.ref if found else None,
            skipped=push.skipped,
        )


@router.post("/deployments/{deployment_id}/build")
def start_build(db: Db, deployment_id: RecordId) -> BuildInfoOut:
    """A worker starts the build: what it needs, config vars included (for ENV_DIR)."""
    with db.session() as session:
        deployment = deployments.deployment_by_id(session, deployment_id, lock=True)
        deployments.start_building(deployment)
        app = session.get(App, deployment.app_id)
        assert app is not None
        return BuildInfoOut(
            app=app.name,
            app_uid=app.uid,
            commit=deployment.commit,
            ref=deployment.ref,
            pusher=deployment.pusher,
            env=apps.env_of(session, app),
            first_release=releases.current_release(session, app) is None,
        )


@router.post("/deployments/{deployment_id}/finish")
def finish_deployment(
    request: Request, db: Db, deployment_id: RecordId, body: FinishIn
) -> FinishOut:
    """The build has ended; a success becomes the app's next release (with its config now)."""
    host = request.app.state.settings.repo_host
    keep = request.app.state.settings.keep_releases
    with db.session() as session:
        deployment = deployments.deployment_by_id(session, deployment_id, lock=True)
        app = session.get(App, deployment.app_id)
        assert app is not None
        build = None
        if body.build is not None:
            build = releases.Build(
                slug_host=host,
                first_deploy=_first_deploy(body.build.manifest),
                **body.build.model_dump(exclude={"manifest"}),
            )
        deployments.finish(
            session,
            deployment,
            body.status,
            error=body.error,
            log=body.log,
            build=build,
            config=apps.env_of(session, app),
        )
        answer = FinishOut(
            status=deployment.status,
            release_version=deployment.release_version,
            keep_slugs=releases.kept_slugs(session, app, keep),
        )
        uid, runner = app.uid, runners.place(request.app, session, app)
        by = f" by {deployment.pusher}" if deployment.pusher else ""
        description = f"Deploy {deployment.commit[:7]}{by}"
    if answer.release_version is not None:
        runners.deploy_release(request.app, runner, uid, answer.release_version, description)
    return answer


def _first_deploy(manifest: ManifestIn | None) -> releases.FirstDeploy | None:
    if manifest is None:
        return None
    return releases.FirstDeploy(
        env={
            name: releases.ConfigDefault(d.value, d.generator, d.required)
            for name, d in manifest.env.items()
        },
        formation=manifest.formation,
        command=manifest.first_deploy_command,
    )


@router.post("/apps/{uid}/releases/{version}")
def release_to_run(db: Db, uid: str, version: RecordId) -> ReleaseRunOut:
    """What a runner needs to run a release."""
    with db.session() as session:
        app = apps.app_by_uid(session, uid)
        release = releases.release_of(session, app, version)
        latest = releases.current_release(session, app)
        types = json.loads(release.process_types)
        return ReleaseRunOut(
            app=app.name,
            app_uid=app.uid,
            version=release.version,
            slug_id=release.slug_id,
            commit=release.commit,
            process_types=types,
            config=json.loads(release.config),
            formation=formation_of(app, list(types)),
            release_command=release.release_command,
            # Once: not when the release is deployed again (a restart of the platform).
            first_deploy_command=(
                release.first_deploy_command if release.status == STARTING else None
            ),
            superseded=latest is not None and latest.version > release.version,
        )


@router.post("/apps/{uid}/releases/{version}/started", status_code=204)
def release_started(db: Db, uid: str, version: RecordId, body: StartedIn) -> None:
    """A runner says how the start of a release went; its deployment ends so."""
    with db.session() as session:
        app = apps.app_by_uid(session, uid)
        deployments.record_start(session, app, version, body.status, body.error)


@router.post("/releases/current")
def current_releases(db: Db, body: CurrentReleasesIn) -> CurrentReleasesOut:
    """The current release of every app placed on a runner: what it brings up when it
    (re)starts."""
    with db.session() as session:
        return CurrentReleasesOut(
            releases=[
                RunningReleaseOut(app_uid=app.uid, version=release.version)
                for app, release in releases.current_releases(session)
                if runners.runner_of(app) == body.runner
            ]
        )


@router.post("/apps/{uid}/slugs/{slug_id}")
def download_slug(request: Request, db: Db, uid: str, slug_id: SlugId) -> FileResponse:
    """A release's slug, for a runner on another host than the repo host's."""
    with db.session() as session:
        app = apps.app_by_uid(session, uid)
        if not releases.has_slug(session, app, slug_id):
            raise ApiError(404, "not_found", f"{app.name} has no slug {slug_id}")
    path = slugs_dir(request.app.state.settings, app.uid) / f"{slug_id}.tar.gz"
    if not path.is_file():
        raise ApiError(404, "not_found", f"the slug {slug_id} is not on this host")
    return FileResponse(path, media_type="application/gzip")

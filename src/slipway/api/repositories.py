"""What the API asks of repo hosts, as jobs on their queues (slipway.builder.jobs)."""

from __future__ import annotations

import logging

import redis
from fastapi import FastAPI

from slipway.builder.repositories import DELETE_REPOSITORY, DELETE_RETRIES, repo_queue
from slipway.jobs import Client

log = logging.getLogger("slipway.api")


def delete_repository(app: FastAPI, uid: str) -> None:
    """Ask the repo host to delete a destroyed app's repository (retried by the job system).

    Nobody can reach it once the app is gone (it is named by the app's uid), so a failure
    here leaves disk space behind, never data that someone else could read."""
    jobs: Client | None = app.state.jobs
    if jobs is None:
        log.warning("no Redis configured: the repository %s stays on disk", uid)
        return
    try:
        queue = repo_queue(app.state.settings.repo_host)
        jobs.enqueue(queue, DELETE_REPOSITORY, [uid], retry=DELETE_RETRIES)
    except redis.RedisError as error:
        log.error("cannot ask for the deletion of repository %s: %s", uid, error)

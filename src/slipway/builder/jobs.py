"""The jobs a repo host's worker runs (``slipwayd worker -r slipway.builder.jobs``).

They take the repository id only, and find the repositories in this host's data dir.
"""

from __future__ import annotations

from slipway import jobs
from slipway.builder import housekeeping
from slipway.builder.gitshell import clean_environment
from slipway.builder.repositories import (
    BUILD,
    DELETE_REPOSITORY,
    DELETE_RETRIES,
    HOUSEKEEP_REPOSITORY,
    RepoHost,
    repository_path,
)


@jobs.job(DELETE_REPOSITORY, retry=DELETE_RETRIES)
def delete_repository(repository: str) -> None:
    """A destroyed app's repository goes (its name may already serve a new app), and with it
    its slugs, its build cache and its Unix user."""
    host = RepoHost.from_environ()
    housekeeping.delete(repository_path(host.data_dir, repository))
    from slipway.builder.build import forget_app

    forget_app(repository)


@jobs.job(HOUSEKEEP_REPOSITORY, retry=3)
def housekeep_repository(repository: str) -> None:
    host = RepoHost.from_environ()
    housekeeping.housekeep(
        repository_path(host.data_dir, repository), clean_environment(host, None)
    )


@jobs.job(BUILD, retry=False)
def build(deployment_id: int, repository: str) -> None:
    """A pushed tree becomes a slug and a release (the pusher waits: never retried)."""
    from slipway.builder.build import run_build

    run_build(deployment_id, repository)

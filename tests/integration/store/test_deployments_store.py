"""Deployments and releases in the store, on SQLite and PostgreSQL: which push deploys,
how a deployment ends (once), how releases are numbered, and which slugs are kept."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from slipway.store import accounts, apps, deployments, releases
from slipway.store.deployments import RefUpdate
from slipway.store.errors import Invalid
from slipway.store.models import App
from tests.control_support import ApiServer

OLD, NEW = "0" * 40, "a" * 40


def build(commit: str = NEW, slug: str = "1" * 32) -> releases.Build:
    return releases.Build(
        slug_id=slug,
        slug_host="local",
        slug_size=10,
        commit=commit,
        buildpack="Procfile",
        process_types={"web": "run"},
        release_command=None,
    )


def push(api: ApiServer, *updates: tuple[str, str]) -> deployments.Push:
    with api.database.session() as session:
        app = session.scalars(select(App)).one()
        return deployments.open_deployment(
            session, app, [RefUpdate(ref, OLD, new) for ref, new in updates], "alice"
        )


@pytest.fixture
def app_id(api: ApiServer) -> int:
    with api.database.session() as session:
        return apps.create_app(session, accounts.create_user(session, "alice"), "shop").id


def test_the_first_push_of_main_sets_the_deploy_branch(api: ApiServer, app_id: int) -> None:
    first = push(api, ("refs/heads/feature", NEW))
    assert first.deployment is None
    assert first.deploy_branch is None
    assert first.skipped == ["refs/heads/feature"]
    second = push(api, ("refs/heads/main", NEW), ("refs/tags/v1", NEW))
    assert second.deploy_branch == "main"
    assert second.deployment is not None
    assert second.deployment.ref == "refs/heads/main"
    assert second.deployment.status == "queued"
    assert second.skipped == ["refs/tags/v1"]
    # master no longer deploys once main does
    assert push(api, ("refs/heads/master", NEW)).deployment is None


def test_master_deploys_when_the_app_has_no_main(api: ApiServer, app_id: int) -> None:
    assert push(api, ("refs/heads/master", NEW)).deploy_branch == "master"


def test_deleting_the_deploy_branch_deploys_nothing(api: ApiServer, app_id: int) -> None:
    assert push(api, ("refs/heads/main", NEW)).deployment is not None
    deleted = push(api, ("refs/heads/main", OLD))
    assert deleted.deployment is None
    assert deleted.skipped == ["refs/heads/main"]


@pytest.mark.parametrize(
    "name", ["", "-x", "a..b", "a/", "x.lock", "a b", "a//b", ".hidden/../x", "é"]
)
def test_bad_deploy_branch_names(api: ApiServer, app_id: int, name: str) -> None:
    with api.database.session() as session:
        app = session.get_one(App, app_id)
        with pytest.raises(Invalid, match="invalid branch name"):
            deployments.set_deploy_branch(app, name)


def test_a_deployment_ends_once_and_a_success_is_a_release(api: ApiServer, app_id: int) -> None:
    opened = push(api, ("refs/heads/main", NEW)).deployment
    assert opened is not None
    with api.database.session() as session:
        deployment = deployments.deployment_by_id(session, opened.id)
        deployments.start_building(deployment)
        with pytest.raises(Invalid, match="needs its build"):
            deployments.finish(session, deployment, "success")
        deployments.finish(session, deployment, "success", build=build(), config={"A": "1"})
        assert deployment.release_version == 1
        assert deployment.status == "starting"  # until a runner says how its start went
        assert deployment.finished_at is None
        # a late second end (the hook giving up) changes nothing
        deployments.finish(session, deployment, "aborted", error="too late")
        assert deployment.status == "starting"
        assert deployment.error is None
        with pytest.raises(Invalid, match="already ended"):
            deployments.start_building(deployment)
        app = session.get_one(App, app_id)
        with pytest.raises(Invalid, match="not a final status"):
            deployments.record_start(session, app, 1, "starting", None)
        deployments.record_start(session, app, 1, "timeout-error", "web.1 did not listen")
        session.flush()
        ended = deployments.deployment_by_id(session, opened.id)  # the same, as mypy sees it
        assert (ended.status, ended.error) == ("timeout-error", "web.1 did not listen")
        assert ended.finished_at is not None
        release = releases.current_release(session, app)
        assert release is not None
        assert release.config == '{"A": "1"}'
        assert release.created_by == "alice"


def test_a_start_ends_older_deployments_still_starting(api: ApiServer, app_id: int) -> None:
    ids = []
    for commit in ("a" * 40, "b" * 40):
        opened = push(api, ("refs/heads/main", commit)).deployment
        assert opened is not None
        ids.append(opened.id)
        with api.database.session() as session:
            deployment = deployments.deployment_by_id(session, opened.id)
            deployments.start_building(deployment)
            deployments.finish(session, deployment, "success", build=build(), config={})
    with api.database.session() as session:
        deployments.record_start(session, session.get_one(App, app_id), 2, "success", None)
    with api.database.session() as session:
        found = [deployments.deployment_by_id(session, i) for i in ids]
        assert [d.status for d in found] == ["aborted", "success"]
        assert found[0].error == "v2 was deployed instead"


def test_config_changes_make_releases_only_after_a_build(api: ApiServer, app_id: int) -> None:
    with api.database.session() as session:
        app = session.get_one(App, app_id)
        assert releases.release_config(session, app, {"A": "1"}, "Set A", "alice") is None
        releases.release_build(session, app, build(), {}, "alice", 1)
        made = releases.release_config(session, app, {"A": "1"}, "Set A config var", "alice")
        assert made is not None
        assert (made.version, made.slug_id, made.description) == (2, "1" * 32, "Set A config var")
    assert releases.config_change_description({"B": "1", "A": "2", "C": None}) == (
        "Set A, B config vars; Unset C config var"
    )


def test_concurrent_releases_get_distinct_numbers(api: ApiServer, app_id: int) -> None:
    made: list[int] = []

    def release(index: int) -> None:
        with api.database.session() as session:
            app = session.get_one(App, app_id)
            made.append(releases.release_build(session, app, build(), {}, "alice", index).version)

    threads = [threading.Thread(target=release, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made) == list(range(1, 9))


def test_the_newest_releases_slugs_are_kept(api: ApiServer, app_id: int) -> None:
    with api.database.session() as session:
        app = session.get_one(App, app_id)
        for index in range(4):
            releases.release_build(session, app, build(slug=f"{index:032d}"), {}, "a", index)
        releases.release_config(session, app, {}, "Set X config var", "a")  # reuses slug 3
        assert releases.kept_slugs(session, app, 2) == [f"{3:032d}"]
        assert releases.kept_slugs(session, app, 3) == [f"{2:032d}", f"{3:032d}"]


def test_unfinished_deployments_are_aborted_when_up_starts_again(
    api: ApiServer, app_id: int
) -> None:
    running = push(api, ("refs/heads/main", NEW)).deployment
    assert running is not None
    with api.database.session() as session:
        assert deployments.abort_unfinished(session, "the platform stopped") == 1
        found = deployments.deployment_by_id(session, running.id)
        assert (found.status, found.error) == ("aborted", "the platform stopped")
        assert deployments.abort_unfinished(session, "again") == 0

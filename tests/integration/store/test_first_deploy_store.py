"""What an app's app.json asks of its first release, in the store (SQLite and PostgreSQL):
config var defaults never over a var already set, a generated secret, the formation, the
first-deploy command on that release only; a required var with no value refuses it."""

from __future__ import annotations

import json
import re

import pytest

from slipway.store import accounts, apps, formation, releases
from slipway.store.errors import Invalid
from slipway.store.models import App
from tests.control_support import ApiServer

FIRST_DEPLOY = releases.FirstDeploy(
    env={
        "GREETING": releases.ConfigDefault(value="hi"),
        "SECRET_KEY": releases.ConfigDefault(generator="secret"),
        "KEPT": releases.ConfigDefault(value="from app.json"),
        "OPTIONAL": releases.ConfigDefault(),
    },
    formation={"web": 2, "worker": 1},
    command="./seed",
)


def build(first_deploy: releases.FirstDeploy | None = FIRST_DEPLOY) -> releases.Build:
    return releases.Build(
        slug_id="1" * 32,
        slug_host="local",
        slug_size=10,
        commit="a" * 40,
        buildpack="Procfile",
        process_types={"web": "run", "worker": "work"},
        release_command="migrate",
        first_deploy=first_deploy,
    )


def release_in_one_transaction(api: ApiServer, app_id: int, wanted: releases.FirstDeploy) -> None:
    with api.database.session() as session:
        app = session.get_one(App, app_id)
        releases.release_build(session, app, build(wanted), apps.env_of(session, app), "a", 1)


@pytest.fixture
def app_id(api: ApiServer) -> int:
    with api.database.session() as session:
        app = apps.create_app(session, accounts.create_user(session, "alice"), "shop")
        apps.change_env(session, app, {"KEPT": "mine"})
        return app.id


def test_the_first_release_takes_app_json_and_later_ones_do_not(
    api: ApiServer, app_id: int
) -> None:
    with api.database.session() as session:
        app = session.get_one(App, app_id)
        first = releases.release_build(session, app, build(), {"KEPT": "mine"}, "alice", 1)
        env = apps.env_of(session, app)
        secret = env.pop("SECRET_KEY")
        assert re.fullmatch("[0-9a-f]{64}", secret)
        assert env == {"GREETING": "hi", "KEPT": "mine"}
        assert json.loads(first.config) == {**env, "SECRET_KEY": secret}
        assert first.first_deploy_command == "./seed"
        assert first.release_command == "migrate"
        assert formation.formation_of(app, ["web", "worker"]) == {"web": 2, "worker": 1}
    changed = releases.FirstDeploy(
        env={"GREETING": releases.ConfigDefault(value="changed")},
        formation={"web": 5},
        command="./seed-again",
    )
    with api.database.session() as session:
        app = session.get_one(App, app_id)
        config = apps.env_of(session, app)
        second = releases.release_build(session, app, build(changed), config, "alice", 2)
        assert second.first_deploy_command is None
        assert apps.env_of(session, app) == config
        assert formation.formation_of(app, ["web", "worker"]) == {"web": 2, "worker": 1}
        rollback = releases.release_rollback(session, app, 1, "alice")
        assert rollback.first_deploy_command is None
        assert rollback.release_command == "migrate"


def test_a_required_var_with_no_value_refuses_the_first_release(
    api: ApiServer, app_id: int
) -> None:
    wanted = releases.FirstDeploy(
        env={
            "GREETING": releases.ConfigDefault(value="hi"),
            "API_KEY": releases.ConfigDefault(required=True),
            "KEPT": releases.ConfigDefault(required=True),  # set already: enough
        }
    )
    with pytest.raises(Invalid) as refused:
        release_in_one_transaction(api, app_id, wanted)
    assert refused.value.message == (
        "app.json: API_KEY is required and has no value: set it with "
        "`slipway env set API_KEY=...`, then push again"
    )
    with api.database.session() as session:
        app = session.get_one(App, app_id)
        assert releases.current_release(session, app) is None
        assert apps.env_of(session, app) == {"KEPT": "mine"}


def test_the_formation_names_the_release_s_process_types(api: ApiServer, app_id: int) -> None:
    wanted = releases.FirstDeploy(formation={"clock": 1})
    with pytest.raises(Invalid, match=r"no process type clock \(the release has web, worker\)"):
        release_in_one_transaction(api, app_id, wanted)

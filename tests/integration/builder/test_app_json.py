"""app.json at work: its env defaults, formation and postdeploy apply once, at the app's
first deploy, never over a config var the user set; a later push changes nothing of
them; a required var with no value rejects the first push with its reason. Pushed with
OpenSSH's git through the gateway of a real `slipwayd up`."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.builds_support import SLIPWAY, Platform, server
from tests.services import wait_until

pytestmark = pytest.mark.timeout(400)

# Serves its config: GREETING and KEPT, and the length of SECRET_KEY.
CONFIG_SERVER = server("v1").replace(
    "os.environ.get('GREETING', 'hello')",
    "' '.join(os.environ.get(k, '-') for k in ('GREETING', 'KEPT'))"
    " + ' secret=' + str(len(os.environ.get('SECRET_KEY', '')))",
)
PROCFILE = "web: python3 server.py\nrelease: echo release ran\n"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(tmp_path_factory.mktemp("app-json"))
    platform.start()
    yield platform
    platform.stop()


def manifest(env: dict[str, Any], **more: Any) -> str:
    return json.dumps({"name": "ignored", "addons": ["heroku-postgresql"], "env": env, **more})


def rejected_with(pushed: subprocess.CompletedProcess[str], reason: str) -> None:
    assert pushed.returncode != 0, pushed.stderr
    assert f"remote:  !     Push rejected: {reason}" in pushed.stderr, pushed.stderr


def printed(platform: Platform, app: str, text: str) -> list[dict[str, str]]:
    """The lines of the app's own output that contain ``text``."""
    return [line for line in platform.app_log(app) if line["s"] == "app" and text in line["m"]]


def test_the_first_deploy_applies_app_json_once(platform: Platform) -> None:
    app = platform.new_app(
        "manifested",
        None,
        {
            "Procfile": PROCFILE,
            "server.py": CONFIG_SERVER,
            "app.json": manifest(
                {
                    "GREETING": {"description": "What it says.", "value": "hi"},
                    "PLAIN": "plain value",
                    "SECRET_KEY": {"description": "Signs cookies.", "generator": "secret"},
                    "KEPT": {"value": "from app.json"},
                },
                formation={"web": {"quantity": 2, "size": "standard-2x"}},
                scripts={"postdeploy": 'echo "postdeploy ran: $GREETING ${#SECRET_KEY}"'},
            ),
        },
    )
    # Set before the first push: app.json's default does not replace it.
    platform.run(SLIPWAY, "env", "set", "KEPT=mine", "-a", "manifested")
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    for line in (
        "remote: -----> app.json: 3 config vars (1 generated), 1 already set, "
        "formation web=2, postdeploy",
        "remote:        formation sizes are ignored: instances have the platform's size",
        'remote:        Postdeploy command, once: echo "postdeploy ran: $GREETING ${#SECRET_KEY}"',
        "remote: -----> Released v1",
    ):
        assert line in pushed.stderr, pushed.stderr
    config = platform.get("/v1/apps/manifested/env")["env"]
    secret = config.pop("SECRET_KEY")
    assert re.fullmatch("[0-9a-f]{64}", secret), secret
    assert config == {"GREETING": "hi", "PLAIN": "plain value", "KEPT": "mine"}
    assert secret not in pushed.stderr + pushed.stdout
    [deployment] = platform.deployments("manifested")
    assert platform.wait_for_status("manifested", deployment["id"]) == "success"
    platform.answers("manifested", "hi mine secret=64 v1")
    [release] = platform.releases("manifested")
    assert release["first_deploy_command"] == 'echo "postdeploy ran: $GREETING ${#SECRET_KEY}"'
    assert secret not in json.dumps(release)
    # Two web instances, from app.json's formation.
    web = [p for p in platform.get("/v1/apps/manifested/ps") if p["type"] == "web"]
    assert sorted(p["name"] for p in web) == ["web.1", "web.2"]
    assert platform.get("/v1/apps/manifested/formation")["formation"]["web"] == 2
    # The postdeploy ran after the release command, in a one-off of v1, with its config.
    ran = platform.wait_for_log("manifested", "postdeploy ran: hi 64")
    assert (ran["s"], ran["i"], ran["v"]) == ("app", "postdeploy.1", "1")
    [released] = printed(platform, "manifested", "release ran")
    assert released["i"] == "release.1"
    assert int(released["t"]) <= int(ran["t"])
    assert secret not in json.dumps(platform.app_log("manifested"))

    # A second push with another app.json: the config, formation and postdeploy stay.
    platform.commit(
        app,
        {
            "server.py": CONFIG_SERVER.replace("'v1'", "'v2'"),
            "app.json": manifest(
                {"GREETING": "changed", "NEW": "new", "SECRET_KEY": {"generator": "secret"}},
                formation={"web": {"quantity": 1}},
                scripts={"postdeploy": "echo postdeploy ran again"},
            ),
        },
    )
    second = platform.push(app)
    assert second.returncode == 0, second.stderr
    assert "remote: -----> app.json: not applied (only the first deploy applies it)" in (
        second.stderr
    )
    assert "Postdeploy command" not in second.stderr
    latest = platform.deployments("manifested")[0]
    assert platform.wait_for_status("manifested", latest["id"]) == "success"
    platform.answers("manifested", "hi mine secret=64 v2")
    assert platform.get("/v1/apps/manifested/env")["env"] == {**config, "SECRET_KEY": secret}
    assert platform.get("/v1/apps/manifested/formation")["formation"]["web"] == 2
    assert platform.releases("manifested")[0]["first_deploy_command"] is None
    platform.wait_for_log("manifested", "v2 deployed")
    assert len(printed(platform, "manifested", "postdeploy ran")) == 1
    assert len(printed(platform, "manifested", "release ran")) == 2

    # A config change makes a release too (v3, of v2's slug): no postdeploy either.
    platform.run(SLIPWAY, "env", "set", "PLAIN=other", "-a", "manifested")
    platform.wait_for_log("manifested", "v3 deployed")
    assert len(printed(platform, "manifested", "postdeploy ran")) == 1


def test_a_required_var_with_no_value_rejects_the_first_push(platform: Platform) -> None:
    app = platform.new_app(
        "needs-key",
        None,
        {
            "Procfile": "web: python3 server.py\n",
            "server.py": server("v1"),
            "app.json": manifest(
                {
                    "API_KEY": {"description": "From the provider.", "required": True},
                    "GREETING": "hello from app.json",
                },
                scripts={"first-deploy": "echo first deploy ran"},
            ),
        },
    )
    pushed = platform.push(app)
    rejected_with(
        pushed,
        "app.json: API_KEY is required and has no value: set it with "
        "`slipway env set API_KEY=...`, then push again",
    )
    assert platform.releases("needs-key") == []
    assert platform.deployments("needs-key")[0]["status"] == "build-error"
    assert platform.get("/v1/apps/needs-key/env")["env"] == {}
    # Once set, the same commit deploys, with the rest of app.json.
    platform.run(SLIPWAY, "env", "set", "API_KEY=k", "-a", "needs-key")
    again = platform.push(app)
    assert again.returncode == 0, again.stderr
    assert "remote: -----> app.json: 1 config var, 1 already set, postdeploy" in again.stderr
    platform.answers("needs-key", "hello from app.json v1")
    assert platform.wait_for_log("needs-key", "first deploy ran")["i"] == "postdeploy.1"


def test_a_failing_postdeploy_fails_the_first_deploy(platform: Platform) -> None:
    app = platform.new_app(
        "bad-seed",
        None,
        {
            "Procfile": "web: python3 server.py\n",
            "server.py": server("v1"),
            "app.json": json.dumps({"scripts": {"postdeploy": {"command": "exit 4"}}}),
        },
    )
    assert platform.push(app).returncode == 0
    [deployment] = platform.deployments("bad-seed")
    assert platform.wait_for_status("bad-seed", deployment["id"]) == "hook-error"
    platform.wait_for_log(
        "bad-seed", "Deploy of v1 failed: app.json's postdeploy exited with status 4"
    )
    assert [p for p in platform.get("/v1/apps/bad-seed/ps") if p["type"] == "web"] == []


@pytest.mark.parametrize(
    ("name", "document", "reason"),
    [
        (
            "not-json",
            "{not json",
            "app.json: invalid JSON at line 1, column 2: Expecting property name",
        ),
        (
            "unknown-type",
            json.dumps({"formation": {"worker": {"quantity": 1}}}),
            "app.json: formation.worker: no process type worker (the release has web)",
        ),
        (
            "url-generator",
            json.dumps({"env": {"SECRET_KEY": {"generator": "url"}}}),
            'app.json: env.SECRET_KEY.generator must be "secret"',
        ),
    ],
)
def test_a_broken_app_json_rejects_the_push(
    platform: Platform, name: str, document: str, reason: str
) -> None:
    app = platform.new_app(
        name, None, {"Procfile": "web: python3 server.py\n", "server.py": server("v1")}
    )
    platform.commit(app, {"app.json": document})
    pushed = platform.push(app)
    assert pushed.returncode != 0, pushed.stderr
    assert f"remote:  !     Push rejected: {reason}" in pushed.stderr, pushed.stderr
    assert platform.releases(name) == []
    wait_until(lambda: platform.deployments(name)[0]["status"] == "build-error", 10, "its end")

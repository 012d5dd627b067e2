"""app.json: what Slipway takes from it (env, formation, the first-deploy script), what it
ignores, and the one-line reason, naming the field, for each thing it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slipway.builder.manifest import ConfigDefault, ManifestError, parse_manifest


def parsed(document: Any) -> Any:
    return parse_manifest(json.dumps(document))


HEROKU_EXAMPLE = {
    "name": "Small Sharp Tool",
    "description": "This app does one little thing, and does it well.",
    "keywords": ["productivity"],
    "scripts": {"postdeploy": "bundle exec rake bootstrap", "pr-predestroy": "x"},
    "env": {
        "SECRET_TOKEN": {"description": "Signs cookies.", "generator": "secret"},
        "WEB_CONCURRENCY": {"description": "Processes to run.", "value": "5"},
        "PLAIN": "a value",
    },
    "formation": {"web": {"quantity": 2, "size": "standard-1x"}, "worker": {"quantity": 0}},
    "image": "heroku/ruby",
    "addons": ["openredis", {"plan": "heroku-postgresql", "options": {"version": "9.5"}}],
    "buildpacks": [{"url": "https://github.com/stomita/heroku-buildpack-phantomjs"}],
    "stack": "heroku-24",
    "environments": {"test": {"scripts": {"test": "bundle exec rake test"}}},
}


def test_heroku_manifest_keeps_env_formation_and_postdeploy_and_ignores_the_rest() -> None:
    manifest = parsed(HEROKU_EXAMPLE)
    assert manifest.env == {
        "SECRET_TOKEN": ConfigDefault(generator="secret", description="Signs cookies."),
        "WEB_CONCURRENCY": ConfigDefault(value="5", description="Processes to run."),
        "PLAIN": ConfigDefault(value="a value"),
    }
    assert manifest.formation == {"web": 2, "worker": 0}
    assert manifest.sizes
    assert manifest.first_deploy == "bundle exec rake bootstrap"
    assert manifest.applies
    # What goes to the API: no descriptions.
    assert manifest.for_release() == {
        "env": {
            "SECRET_TOKEN": {"value": None, "generator": "secret", "required": False},
            "WEB_CONCURRENCY": {"value": "5", "generator": None, "required": False},
            "PLAIN": {"value": "a value", "generator": None, "required": False},
        },
        "formation": {"web": 2, "worker": 0},
        "first_deploy_command": "bundle exec rake bootstrap",
    }


def test_scalingo_manifest_first_deploy_and_amount() -> None:
    manifest = parsed(
        {
            "env": {"ENVIRONMENT": {"value": "staging"}, "SECRET_KEY": {"generator": "secret"}},
            "formation": {"web": {"amount": 3, "size": "M"}},
            "scripts": {"first-deploy": "  bundle exec rake db:seed  "},
        }
    )
    assert manifest.formation == {"web": 3}
    assert manifest.first_deploy == "bundle exec rake db:seed"
    assert set(manifest.env) == {"ENVIRONMENT", "SECRET_KEY"}


def test_postdeploy_in_herokus_object_form() -> None:
    manifest = parsed({"scripts": {"postdeploy": {"command": "./seed", "size": "basic"}}})
    assert manifest.first_deploy == "./seed"


def test_an_empty_or_unrelated_manifest_asks_nothing() -> None:
    for document in ({}, {"name": "x", "addons": ["heroku-postgresql"], "scripts": {}}):
        manifest = parsed(document)
        assert (manifest.env, manifest.formation, manifest.first_deploy) == ({}, {}, None)
        assert not manifest.applies
        assert not manifest.sizes


def test_a_var_with_neither_value_nor_generator_is_required_unless_it_says_not() -> None:
    manifest = parsed(
        {
            "env": {
                "API_KEY": {"description": "From the provider."},  # Heroku's default: required
                "OPTIONAL": {"required": False},
                "GIVEN": {"value": "x", "required": True},  # its value satisfies it
                "EMPTY": "",  # a value too
                "NULL": {"value": None, "required": True},
            }
        }
    )
    assert [n for n, d in manifest.env.items() if d.required] == ["API_KEY", "NULL"]
    manifest.check_required({"API_KEY": "k", "NULL": "n"})
    with pytest.raises(ManifestError) as raised:
        manifest.check_required({"NULL": "n"})
    assert str(raised.value) == (
        "app.json: API_KEY is required and has no value: set it with "
        "`slipway env set API_KEY=...`, then push again"
    )


def test_formation_names_process_types_the_release_has() -> None:
    manifest = parsed({"formation": {"web": {"quantity": 1}, "worker": {"quantity": 2}}})
    manifest.check_process_types(["web", "worker", "clock"])
    with pytest.raises(ManifestError) as raised:
        manifest.check_process_types(["web", "clock"])
    assert str(raised.value) == (
        "app.json: formation.worker: no process type worker (the release has clock, web)"
    )


def test_a_size_alone_changes_no_quantity() -> None:
    manifest = parsed({"formation": {"web": {"size": "XL"}}})
    assert manifest.formation == {}
    assert manifest.sizes


def test_summary_counts_what_the_first_deploy_gets_and_never_shows_a_value() -> None:
    manifest = parsed(HEROKU_EXAMPLE)
    summary = manifest.summary({})
    assert summary == "3 config vars (1 generated), formation web=2 worker=0, postdeploy"
    # Vars the user set already are kept, and counted apart.
    kept = manifest.summary({"PLAIN": "mine", "SECRET_TOKEN": "mine"})
    assert kept == "1 config var, 2 already set, formation web=2 worker=0, postdeploy"
    assert parsed({"env": {"A": "s3cr3t"}}).summary({}) == "1 config var"
    assert parsed({"env": {"A": {"required": False}}}).summary({}) == "nothing to apply"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{\n  "env": {"A" "x"}\n}',
            "app.json: invalid JSON at line 2, column 15: Expecting ':' delimiter",
        ),
        ("", "app.json: invalid JSON at line 1, column 1: Expecting value"),
        ("[1, 2]", "app.json: must be a JSON object, not an array"),
        ('"app"', "app.json: must be a JSON object, not a string"),
        ('{"env": []}', "app.json: env must be an object, not an array"),
        (
            '{"env": {"PORT": 5000}}',
            "app.json: env.PORT must be a string or an object, not a number",
        ),
        ('{"env": {"A": true}}', "app.json: env.A must be a string or an object, not a boolean"),
        ('{"env": {"A": ["x"]}}', "app.json: env.A must be a string or an object, not an array"),
        ('{"env": {"A": {"value": 5}}}', "app.json: env.A.value must be a string, not a number"),
        (
            '{"env": {"SECRET_KEY": {"generator": "url"}}}',
            'app.json: env.SECRET_KEY.generator must be "secret"',
        ),
        (
            '{"env": {"SECRET_KEY": {"generator": null, "value": "x", "required": "yes"}}}',
            "app.json: env.SECRET_KEY.required must be true or false, not a string",
        ),
        (
            '{"env": {"K": {"value": "x", "generator": "secret"}}}',
            "app.json: env.K has both a value and a generator: keep one",
        ),
        (
            '{"env": {"K": {"value": "x", "description": 3}}}',
            "app.json: env.K.description must be a string, not a number",
        ),
        (
            '{"env": {"my-var": "x"}}',
            "app.json: env: invalid variable name 'my-var': use uppercase letters, digits "
            "and underscores, not starting with a digit",
        ),
        ('{"env": {"A": "x\\u0000y"}}', "app.json: env: the value of A contains a NUL character"),
        ('{"formation": [1]}', "app.json: formation must be an object, not an array"),
        (
            '{"formation": {"web": 2}}',
            'app.json: formation.web must be an object such as {"quantity": 1}',
        ),
        (
            '{"formation": {"web": {"quantity": -1}}}',
            "app.json: formation.web.quantity must be a whole number from 0 to 20, not -1",
        ),
        (
            '{"formation": {"web": {"quantity": 21}}}',
            "app.json: formation.web.quantity must be a whole number from 0 to 20, not 21",
        ),
        (
            '{"formation": {"web": {"quantity": "2"}}}',
            'app.json: formation.web.quantity must be a whole number from 0 to 20, not "2"',
        ),
        (
            '{"formation": {"web": {"quantity": 1.5}}}',
            "app.json: formation.web.quantity must be a whole number from 0 to 20, not 1.5",
        ),
        (
            '{"formation": {"web": {"quantity": true}}}',
            "app.json: formation.web.quantity must be a whole number from 0 to 20, not true",
        ),
        (
            '{"formation": {"web": {"amount": 30}}}',
            "app.json: formation.web.amount must be a whole number from 0 to 20, not 30",
        ),
        (
            '{"formation": {"web": {"quantity": 1, "amount": 1}}}',
            "app.json: formation.web has both quantity and amount: keep one",
        ),
        ('{"scripts": "x"}', "app.json: scripts must be an object, not a string"),
        (
            '{"scripts": {"postdeploy": "a", "first-deploy": "b"}}',
            "app.json: scripts has both postdeploy and first-deploy (the same thing: keep one)",
        ),
        (
            '{"scripts": {"postdeploy": ["a"]}}',
            "app.json: scripts.postdeploy must be a string (a command), not an array",
        ),
        (
            '{"scripts": {"postdeploy": {"size": "x"}}}',
            "app.json: scripts.postdeploy.command must be a string (a command), not null",
        ),
        ('{"scripts": {"first-deploy": "  "}}', "app.json: scripts.first-deploy is empty"),
        (
            json.dumps({"scripts": {"postdeploy": "x" * 10_001}}),
            "app.json: scripts.postdeploy is longer than 10000 characters",
        ),
    ],
)
def test_each_problem_is_one_line_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as raised:
        parse_manifest(text)
    assert str(raised.value) == message
    assert "\n" not in message

"""What a newcomer's walkthrough of `slipway` found: each test runs the real command."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from slipway import __version__
from tests.control_support import SLIPWAY, ApiServer, Cli
from tests.integration.cli.test_cli import git_repo, logged_in, one_line
from tests.terminal import on_terminal


def remotes(repo: Path) -> dict[str, str]:
    listed = subprocess.run(
        ["git", "-C", str(repo), "remote", "-v"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split()[0]: line.split()[1] for line in listed.splitlines()}


def test_version(cli: Cli) -> None:
    assert cli.ok("--version") == f"slipway {__version__}\n"


@pytest.mark.parametrize(
    "argv",
    [["--debug", "apps", "list"], ["apps", "list", "--debug"], ["apps", "--debug", "list"]],
)
def test_debug_is_accepted_anywhere(cli: Cli, argv: list[str]) -> None:
    result = cli.run(*argv, SLIPWAY_API_URL="http://127.0.0.1:1", SLIPWAY_API_TOKEN="slp_x")
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "cannot reach the Slipway API" in result.stderr


def test_debug_after_double_dash_or_in_a_value_is_text(cli: Cli, sqlite_api: ApiServer) -> None:
    logged_in(cli, sqlite_api)
    cli.ok("apps", "create", "shop")
    error = one_line(cli.fails("env", "set", "-a", "shop", "--", "--debug"))
    assert "expected NAME=VALUE, got '--debug'" in error
    cli.ok("env", "set", "-a", "shop", "A=--debug", "--debug")
    assert json.loads(cli.ok("env", "list", "-a", "shop", "--json")) == {"A": "--debug"}


def test_env_unset_of_a_missing_variable_changes_nothing(cli: Cli, sqlite_api: ApiServer) -> None:
    logged_in(cli, sqlite_api)
    cli.ok("apps", "create", "shop")
    cli.ok("env", "set", "A=1", "B=2", "-a", "shop")
    error = one_line(cli.fails("env", "unset", "NOPE", "-a", "shop"))
    assert error.startswith("slipway: shop has no variable NOPE")
    error = one_line(cli.fails("env", "unset", "A", "NOPE", "GHOST", "-a", "shop"))
    assert "shop has no variables NOPE, GHOST" in error
    assert json.loads(cli.ok("env", "list", "-a", "shop", "--json")) == {"A": "1", "B": "2"}
    assert "Unset A, B on shop" in cli.ok("env", "unset", "A", "B", "-a", "shop")
    assert json.loads(cli.ok("env", "list", "-a", "shop", "--json")) == {}


def test_an_api_url_without_scheme_means_http(cli: Cli, sqlite_api: ApiServer) -> None:
    token = sqlite_api.create_user("alice")
    bare = sqlite_api.url.removeprefix("http://")
    login = cli.run("login", "--api-url", bare, "--token", token)
    assert login.returncode == 0, login.stderr
    assert login.stderr == f"slipway: --api-url has no scheme: using {sqlite_api.url}\n"
    config = json.loads((cli.home / ".config" / "slipway" / "config.json").read_text())
    assert config["api_url"] == sqlite_api.url
    by_env = cli.run("whoami", SLIPWAY_API_URL=bare, SLIPWAY_API_TOKEN=token)
    assert by_env.returncode == 0 and by_env.stdout.startswith("alice on http://")
    assert by_env.stderr.count("has no scheme") == 1 and "SLIPWAY_API_URL" in by_env.stderr


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:21", "http://", "http:///v1", "host:99999"])
def test_an_api_url_that_is_not_http_is_refused(cli: Cli, sqlite_api: ApiServer, url: str) -> None:
    token = sqlite_api.create_user("alice")
    error = one_line(cli.fails("login", "--api-url", url, "--token", token))
    assert f"invalid API URL {url!r} in --api-url: use http://HOST:PORT" in error
    assert not (cli.home / ".config" / "slipway" / "config.json").exists()
    error = one_line(cli.fails("whoami", SLIPWAY_API_URL=url, SLIPWAY_API_TOKEN=token))
    assert "in SLIPWAY_API_URL: use http://HOST:PORT" in error


@pytest.mark.parametrize(
    ("name", "hint"),
    [("Shop", ": try 'shop'"), ("My_App", ""), ("API", "")],  # api is reserved
)
def test_app_names_with_capitals_are_explained(
    cli: Cli, sqlite_api: ApiServer, name: str, hint: str
) -> None:
    logged_in(cli, sqlite_api)
    error = one_line(cli.fails("apps", "create", name))
    assert error == f"slipway: invalid app name {name!r}: app names are lowercase{hint}\n"
    assert json.loads(cli.ok("apps", "list", "--json")) == []


def test_apps_destroy_yes_removes_only_the_remotes_of_the_app(
    cli: Cli, sqlite_api: ApiServer
) -> None:
    logged_in(cli, sqlite_api)
    repo = git_repo(cli.home / "shop")
    cli.ok("apps", "create", "shop", cwd=repo)
    blog = json.loads(cli.ok("apps", "create", "blog", "--json"))["git_remote"]
    shop = remotes(repo)["slipway"]
    for name, url in [
        ("backup", shop),
        ("blog", blog),
        ("origin", "https://example.com/shop.git"),
        ("elsewhere", "ssh://git@other.test:2222/shop.git"),  # same app name, another server
    ]:
        subprocess.run(["git", "-C", str(repo), "remote", "add", name, url], check=True)
    out = cli.ok("apps", "destroy", "--yes", cwd=repo)
    assert f"Removed git remote 'slipway' ({shop})" in out
    assert f"Removed git remote 'backup' ({shop})" in out
    assert set(remotes(repo)) == {"blog", "origin", "elsewhere"}
    # A remote with the app's name but another URL is never touched.
    subprocess.run(
        ["git", "-C", str(repo), "remote", "add", "slipway", "ssh://git@other.test:2222/blog.git"],
        check=True,
    )
    out = cli.ok("apps", "destroy", "-a", "blog", "--yes", cwd=repo)
    assert "Removed git remote 'blog'" in out and "'slipway'" not in out
    assert set(remotes(repo)) == {"slipway", "origin", "elsewhere"}


@pytest.mark.parametrize(("answer", "kept"), [(b"n", {"slipway"}), (b"y", set())])
def test_apps_destroy_offers_to_remove_the_remote(
    cli: Cli, sqlite_api: ApiServer, answer: bytes, kept: set[str]
) -> None:
    logged_in(cli, sqlite_api)
    repo = git_repo(cli.home / "shop")
    cli.ok("apps", "create", "shop", cwd=repo)
    argv = ["env", "-C", str(repo), str(SLIPWAY), "apps", "destroy"]
    status, shown = on_terminal(argv, cli.env(), (b"to confirm", b"shop\n" + answer + b"\n"))
    assert status == 0, shown
    assert "Destroyed app shop" in shown and "Remove the git remote 'slipway'" in shown
    assert set(remotes(repo)) == kept


def test_the_completion_cache_is_private(cli: Cli, sqlite_api: ApiServer) -> None:
    cache = cli.home / ".cache" / "slipway" / "apps.json"
    cache.parent.mkdir(parents=True)
    cache.write_text("{}")
    cache.chmod(0o644)  # as written by an earlier version
    logged_in(cli, sqlite_api)
    cli.ok("apps", "create", "shop")
    cli.ok("apps", "list")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert json.loads(cache.read_text())["apps"] == ["shop"]
    assert [path.name for path in cache.parent.iterdir()] == ["apps.json"]  # no temporary left


def test_tokens_list_create_revoke(cli: Cli, sqlite_api: ApiServer) -> None:
    logged_in(cli, sqlite_api)
    [mine] = json.loads(cli.ok("tokens", "list", "--json"))
    assert "token" not in mine and mine["revoked_at"] is None
    created = cli.run("tokens", "create", "--name", "ci")
    assert created.returncode == 0 and "shown only now" in created.stderr
    ci = created.stdout.strip()
    assert created.stdout == ci + "\n" and ci.startswith("slp_")
    assert cli.ok("whoami", SLIPWAY_API_TOKEN=ci).startswith("alice")
    listed = json.loads(cli.ok("tokens", "list", "--json"))
    assert [token["name"] for token in listed] == [mine["name"], "ci"]
    assert "PREFIX" in (table := cli.ok("tokens", "list")) and listed[1]["prefix"] in table

    out = cli.ok("tokens", "revoke", str(listed[1]["id"]))
    assert out == f"Revoked token {listed[1]['id']}\n"  # not ours: nothing more to say
    assert "invalid or revoked" in one_line(cli.fails("whoami", SLIPWAY_API_TOKEN=ci))
    assert "no token 999" in one_line(cli.fails("tokens", "revoke", "999"))

    script = json.loads(cli.ok("tokens", "create", "--json"))
    out = cli.ok("tokens", "revoke", str(script["id"]), SLIPWAY_API_TOKEN=script["token"])
    assert "That was the token in SLIPWAY_API_TOKEN" in out
    assert cli.ok("whoami").startswith("alice")  # the stored login is untouched

    out = cli.ok("tokens", "revoke", str(mine["id"]))
    assert "That was the token you were logged in with" in out
    assert "not logged in" in one_line(cli.fails("whoami"))

"""The `slipway` CLI as a new user drives it, against a real API server."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.control_support import ApiServer, Cli
from tests.keys import generate


def logged_in(cli: Cli, api: ApiServer, name: str = "alice") -> str:
    token = api.create_user(name)
    cli.ok("login", "--api-url", api.url, "--token", token)
    return token


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def one_line(stderr: str) -> str:
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    assert stderr.startswith("slipway: ")
    return stderr


def test_login_stores_the_token_privately(cli: Cli, sqlite_api: ApiServer) -> None:
    token = sqlite_api.create_user("alice")
    out = cli.ok("login", "--api-url", sqlite_api.url, "--token", token)
    assert "Logged in" in out and "alice" in out
    config = cli.home / ".config" / "slipway" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert json.loads(config.read_text()) == {"api_url": sqlite_api.url, "token": token}
    assert cli.ok("whoami").startswith("alice on http://")
    assert json.loads(cli.ok("whoami", "--json"))["name"] == "alice"
    cli.ok("logout")
    assert "not logged in" in one_line(cli.fails("whoami"))


def test_login_reads_the_token_from_stdin(cli: Cli, sqlite_api: ApiServer) -> None:
    token = sqlite_api.create_user("alice")
    cli.ok("login", "--api-url", sqlite_api.url, stdin=token + "\n")
    assert cli.ok("whoami").startswith("alice")


def test_environment_overrides_the_stored_login(cli: Cli, sqlite_api: ApiServer) -> None:
    logged_in(cli, sqlite_api)
    bob = sqlite_api.create_user("bob")
    assert cli.ok("whoami", SLIPWAY_API_TOKEN=bob).startswith("bob")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("slp_wrong", "invalid or revoked API token"),
        ("", "no token given"),
    ],
)
def test_a_bad_login_stores_nothing(
    cli: Cli, sqlite_api: ApiServer, token: str, message: str
) -> None:
    assert message in one_line(cli.fails("login", "--api-url", sqlite_api.url, "--token", token))
    assert not (cli.home / ".config" / "slipway" / "config.json").exists()


def test_an_unreachable_api_is_one_line_and_debug_shows_the_traceback(cli: Cli) -> None:
    error = one_line(
        cli.fails("whoami", SLIPWAY_API_URL="http://127.0.0.1:1", SLIPWAY_API_TOKEN="slp_x")
    )
    assert "cannot reach the Slipway API at http://127.0.0.1:1" in error
    debug = cli.run(
        "--debug", "whoami", SLIPWAY_API_URL="http://127.0.0.1:1", SLIPWAY_API_TOKEN="slp_x"
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.parametrize("content", ["{not json", '{"api_url": 42}', "[]", "\x00\xff"])
def test_a_damaged_config_is_reported_and_never_overwritten(
    cli: Cli, sqlite_api: ApiServer, content: str
) -> None:
    config = cli.home / ".config" / "slipway" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(content)
    assert "is damaged" in one_line(cli.fails("whoami"))
    token = sqlite_api.create_user("alice")
    assert "move it away or delete it" in one_line(
        cli.fails("login", "--api-url", sqlite_api.url, "--token", token)
    )
    assert config.read_text() == content


def test_keys_add_list_remove(cli: Cli, sqlite_api: ApiServer) -> None:
    logged_in(cli, sqlite_api)
    assert "no public key found" in one_line(cli.fails("keys", "add"))
    ssh = cli.home / ".ssh"
    ssh.mkdir()
    private = generate("ed25519")
    shutil.copy(private, ssh / "id_ed25519")  # signs the challenge
    shutil.copy(f"{private}.pub", ssh / "id_ed25519.pub")
    assert "Added key 'test@slipway'" in cli.ok("keys", "add")
    other = generate("ecdsa", 256)
    cli.ok("keys", "add", f"{other}.pub", "--name", "work laptop")
    listed = json.loads(cli.ok("keys", "list", "--json"))
    assert [key["name"] for key in listed] == ["test@slipway", "work laptop"]
    table = cli.ok("keys", "list")
    assert "FINGERPRINT" in table and listed[1]["fingerprint"] in table
    assert "private key" in one_line(cli.fails("keys", "add", str(private)))
    assert "cannot read" in one_line(cli.fails("keys", "add", str(ssh / "nope.pub")))
    cli.ok("keys", "remove", "work laptop")
    assert len(json.loads(cli.ok("keys", "list", "--json"))) == 1
    # The same key for another user is refused with a message that says so.
    bob_home = Cli(cli.home.parent / "bob", cli.api_url)
    bob_home.home.mkdir()
    logged_in(bob_home, sqlite_api, "bob")
    error = one_line(bob_home.fails("keys", "add", str(ssh / "id_ed25519.pub")))
    assert "already registered by another user" in error


def test_apps_create_adds_the_git_remote_and_commands_find_the_app(
    cli: Cli, sqlite_api: ApiServer
) -> None:
    logged_in(cli, sqlite_api)
    repo = git_repo(cli.home / "shop")
    out = cli.ok("apps", "create", "shop", cwd=repo)
    assert "ssh://git@slipway.test:2222/shop.git" in out
    remote = subprocess.run(
        ["git", "-C", str(repo), "remote", "get-url", "slipway"], capture_output=True, text=True
    ).stdout.strip()
    assert remote == "ssh://git@slipway.test:2222/shop.git"
    nested = repo / "src" / "deep"
    nested.mkdir(parents=True)
    assert json.loads(cli.ok("apps", "info", "--json", cwd=nested))["name"] == "shop"
    cli.ok("apps", "create", "blog")  # outside a repository: only a hint
    assert json.loads(cli.ok("apps", "info", "-a", "blog", "--json"))["name"] == "blog"
    assert json.loads(cli.ok("apps", "info", "--json", SLIPWAY_APP="blog"))["name"] == "blog"
    names = [app["name"] for app in json.loads(cli.ok("apps", "list", "--json"))]
    assert names == ["blog", "shop"]


def test_the_app_cannot_be_found(cli: Cli, sqlite_api: ApiServer) -> None:
    logged_in(cli, sqlite_api)
    assert "give -a APP" in one_line(cli.fails("apps", "info"))  # not in a repository
    repo = git_repo(cli.home / "repo")
    assert "no git remote 'slipway' with a URL" in one_line(cli.fails("apps", "info", cwd=repo))
    subprocess.run(["git", "-C", str(repo), "config", "remote.slipway.fetch", "x"], check=True)
    assert "no git remote 'slipway' with a URL" in one_line(cli.fails("apps", "info", cwd=repo))
    subprocess.run(
        ["git", "-C", str(repo), "remote", "add", "other", "https://example.com/x/y"], check=True
    )
    assert "cannot tell the app" in one_line(cli.fails("apps", "info", "-r", "other", cwd=repo))
    assert "no app named 'ghost'" in one_line(cli.fails("apps", "info", "-a", "ghost"))


def test_apps_destroy_asks_unless_yes(cli: Cli, sqlite_api: ApiServer) -> None:
    logged_in(cli, sqlite_api)
    cli.ok("apps", "create", "shop")
    assert "add --yes to confirm" in one_line(cli.fails("apps", "destroy", "-a", "shop"))
    assert json.loads(cli.ok("apps", "info", "-a", "shop", "--json"))["name"] == "shop"
    cli.ok("apps", "destroy", "-a", "shop", "--yes")
    assert "no app named 'shop'" in cli.fails("apps", "info", "-a", "shop")


def test_collaborators(cli: Cli, sqlite_api: ApiServer) -> None:
    logged_in(cli, sqlite_api)
    sqlite_api.create_user("bob")
    cli.ok("apps", "create", "shop")
    cli.ok("collaborators", "add", "bob", "-a", "shop")
    listed = json.loads(cli.ok("collaborators", "list", "-a", "shop", "--json"))
    assert [(c["user"], c["role"]) for c in listed] == [("alice", "owner"), ("bob", "collaborator")]
    assert "already has access" in one_line(cli.fails("collaborators", "add", "bob", "-a", "shop"))
    assert "no user named 'zed'" in one_line(cli.fails("collaborators", "add", "zed", "-a", "shop"))
    cli.ok("collaborators", "remove", "bob", "-a", "shop")
    assert len(json.loads(cli.ok("collaborators", "list", "-a", "shop", "--json"))) == 1


def test_env_set_unset_and_files(cli: Cli, sqlite_api: ApiServer) -> None:
    logged_in(cli, sqlite_api)
    cli.ok("apps", "create", "shop")
    cli.ok("env", "set", "A=1", "B=x=y", "EMPTY=", "-a", "shop")
    dotenv = cli.home / ".env"
    dotenv.write_text(
        '# comment\nexport DATABASE_URL="postgres://u:p@h/db"\n\n'
        "QUOTED='single quoted'\nMULTI=\"line1\\nline2\"\n"
    )
    cli.ok("env", "set", "--file", str(dotenv), "-a", "shop")
    cli.ok("env", "set", "--file", "-", "-a", "shop", stdin="FROM_STDIN=yes\n")
    env = json.loads(cli.ok("env", "list", "-a", "shop", "--json"))
    assert env == {
        "A": "1",
        "B": "x=y",
        "EMPTY": "",
        "DATABASE_URL": "postgres://u:p@h/db",
        "QUOTED": "single quoted",
        "MULTI": "line1\nline2",
        "FROM_STDIN": "yes",
    }
    assert "A=1\n" in cli.ok("env", "list", "-a", "shop")
    cli.ok("env", "unset", "A", "B", "-a", "shop")
    assert "A" not in json.loads(cli.ok("env", "list", "-a", "shop", "--json"))
    # Bad input changes nothing: the whole set is refused.
    before = cli.ok("env", "list", "-a", "shop", "--json")
    assert "expected NAME=VALUE" in one_line(cli.fails("env", "set", "NOEQUALS", "-a", "shop"))
    assert "invalid variable name 'lower'" in one_line(
        cli.fails("env", "set", "GOOD=1", "lower=2", "-a", "shop")
    )
    dotenv.write_text("OK=1\nNO_VALUE\n")
    assert "no value for NO_VALUE" in one_line(
        cli.fails("env", "set", "--file", str(dotenv), "-a", "shop")
    )
    assert "no such file" in one_line(cli.fails("env", "set", "--file", "nope.env", "-a", "shop"))
    assert cli.ok("env", "list", "-a", "shop", "--json") == before


def test_completion_scripts_and_app_names(cli: Cli, sqlite_api: ApiServer) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert "_SLIPWAY_COMPLETE" in cli.ok("completion", shell)
    assert "use bash, zsh or fish" in one_line(cli.fails("completion", "tcsh"))
    logged_in(cli, sqlite_api)
    for name in ("shop", "shopify-clone", "blog"):
        cli.ok("apps", "create", name)

    def complete(*words: str) -> list[str]:
        line = ["slipway", *words]
        out = cli.ok(
            _SLIPWAY_COMPLETE="complete_bash",
            COMP_WORDS=" ".join(line),
            COMP_CWORD=str(len(line) - 1),
        )
        return out.split()

    assert complete("apps", "info", "-a", "sh") == ["shop", "shopify-clone"]
    assert "collaborators" in complete("co")
    assert "create" in complete("apps", "cr")
    assert "--json" in complete("apps", "list", "--")
    cache = cli.home / ".cache" / "slipway" / "apps.json"
    assert set(json.loads(cache.read_text())["apps"]) == {"shop", "shopify-clone", "blog"}

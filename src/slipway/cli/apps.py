"""``apps``, ``collaborators`` and ``env``."""

from __future__ import annotations

import sys
from io import StringIO
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer
from dotenv import dotenv_values

from slipway.cli.appcache import remember_apps
from slipway.cli.appname import DEFAULT_REMOTE, app_path, detect_app, git
from slipway.cli.errors import CliError
from slipway.cli.http import Api
from slipway.cli.options import AppOption, JsonOption, RemoteOption
from slipway.cli.output import console, show
from slipway.store.errors import Invalid
from slipway.store.names import check_app_name

APP_COLUMNS = ["name", "owner", "role", "git_remote", "deploy_branch", "created_at"]

apps = typer.Typer(help="Create and manage apps.", no_args_is_help=True)
collaborators = typer.Typer(help="Share an app with other users.", no_args_is_help=True)
env = typer.Typer(help="Manage an app's environment variables.", no_args_is_help=True)


def refuse_capitals(name: str) -> None:
    """The API's message lists every rule; a name with capitals, the usual slip, gets a
    pointed one (and the lowercased name when that one would do)."""
    if name == name.lower():
        return
    try:
        hint = f": try {check_app_name(name.lower())!r}"
    except Invalid:
        hint = ""
    raise CliError(f"invalid app name {name!r}: app names are lowercase{hint}")


@apps.command("create")
def apps_create(
    name: Annotated[str, typer.Argument(help="3-48 lowercase letters, digits and dashes.")],
    remote: Annotated[str, typer.Option("-r", "--remote", help="The git remote to add.")] = (
        DEFAULT_REMOTE
    ),
    as_json: JsonOption = False,
) -> None:
    """Create an app; inside a git repository, also add its git remote."""
    refuse_capitals(name)
    app = Api.logged_in().call("POST", "/v1/apps", json={"name": name})
    if as_json:
        show(app, True)
        return
    console.print(f"Created app {app['name']}; git remote: {app['git_remote']}")
    if git("rev-parse", "--git-dir") is None:
        console.print(
            f"Add it to your repository with: git remote add {remote} {app['git_remote']}"
        )
        return
    existing = git("config", "--get", f"remote.{remote}.url")
    if existing is None:
        if git("remote", "add", remote, app["git_remote"]) is None:
            raise CliError(f"could not add the git remote {remote!r}")
        console.print(f"Added git remote {remote!r}: git push {remote} main")
    elif existing != app["git_remote"]:
        console.print(
            f"The git remote {remote!r} already points to {existing}; left as is. "
            f"Use -r NAME to add another remote."
        )


@apps.command("list")
def apps_list(as_json: JsonOption = False) -> None:
    """List the apps you own or collaborate on."""
    api = Api.logged_in()
    found = api.pages("/v1/apps")
    remember_apps(api.api_url, [app["name"] for app in found])
    show(found, as_json, APP_COLUMNS, "no apps yet: slipway apps create NAME")


@apps.command("info")
def apps_info(
    app: AppOption = None, remote: RemoteOption = None, as_json: JsonOption = False
) -> None:
    """Show an app."""
    show(Api.logged_in().call("GET", app_path(detect_app(app, remote))), as_json, APP_COLUMNS)


@apps.command("deploy-branch")
def apps_deploy_branch(
    branch: Annotated[
        str | None, typer.Argument(help="The branch whose pushes deploy; omit to show it.")
    ] = None,
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Show or set the branch whose pushes build and deploy (the first push of main, else
    master, sets it); pushes of other branches are stored only."""
    api = Api.logged_in()
    path = app_path(detect_app(app, remote))
    if branch is None:
        current = api.call("GET", path)["deploy_branch"]
        console.print(current or "not set yet: the first push of main (or master) sets it")
        return
    api.call("PATCH", path, json={"deploy_branch": branch})
    console.print(f"Pushes of {branch} now deploy.")


def remotes_pointing_to(url: str) -> list[str]:
    """The enclosing repository's git remotes whose URL is exactly ``url``."""
    listed = git("config", "--local", "--get-regexp", r"^remote\..*\.url$") or ""
    found = []
    for line in listed.splitlines():
        key, _, value = line.partition(" ")
        if value == url:
            found.append(key.removeprefix("remote.").removesuffix(".url"))
    return found


@apps.command("destroy")
def apps_destroy(
    app: AppOption = None,
    remote: RemoteOption = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", "-y", help="Do not ask; also remove the git remotes that point to the app."
        ),
    ] = False,
) -> None:
    """Destroy an app and everything it holds. Asks you to type its name, unless --yes; then
    offers to remove the git remotes of the enclosing repository that point to it."""
    name = detect_app(app, remote)
    api = Api.logged_in()
    git_remote = api.call("GET", app_path(name))["git_remote"]
    if not yes:
        if not sys.stdin.isatty():
            raise CliError(f"destroying {name!r} cannot be undone: add --yes to confirm")
        typed = typer.prompt(f"Destroying {name!r} cannot be undone. Type its name to confirm")
        if typed.strip() != name:
            raise CliError("the name does not match; nothing was destroyed")
    api.call("DELETE", app_path(name))
    console.print(f"Destroyed app {name}")
    for stale in remotes_pointing_to(git_remote):
        if yes or typer.confirm(f"Remove the git remote {stale!r} ({git_remote})?", default=True):
            if git("remote", "remove", stale) is None:
                raise CliError(f"could not remove the git remote {stale!r}")
            console.print(f"Removed git remote {stale!r} ({git_remote})")


@collaborators.command("list")
def collaborators_list(
    app: AppOption = None, remote: RemoteOption = None, as_json: JsonOption = False
) -> None:
    """List who has access to an app."""
    found = Api.logged_in().pages(app_path(detect_app(app, remote)) + "/collaborators")
    show(found, as_json, ["user", "role", "created_at"])


@collaborators.command("add")
def collaborators_add(
    user: Annotated[str, typer.Argument(help="A user name.")],
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Give a user access to an app (owner only)."""
    name = detect_app(app, remote)
    Api.logged_in().call("POST", app_path(name) + "/collaborators", json={"user": user})
    console.print(f"{user} is now a collaborator of {name}")


@collaborators.command("remove")
def collaborators_remove(
    user: Annotated[str, typer.Argument(help="A user name.")],
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Take a user's access to an app away (owner only)."""
    name = detect_app(app, remote)
    Api.logged_in().call("DELETE", f"{app_path(name)}/collaborators/{quote(user, safe='')}")
    console.print(f"{user} no longer has access to {name}")


# Control characters (C0, DEL, C1) as Python escapes: \x1b, \n, \x9b...
CONTROL_ESCAPES = {code: repr(chr(code))[1:-1] for code in [*range(0x20), *range(0x7F, 0xA0)]}


@env.command("list")
def env_list(
    app: AppOption = None, remote: RemoteOption = None, as_json: JsonOption = False
) -> None:
    """List an app's environment variables."""
    variables = Api.logged_in().call("GET", app_path(detect_app(app, remote)) + "/env")["env"]
    if as_json:
        show(variables, True)
    elif not variables:
        console.print("no variables yet: slipway env set NAME=VALUE")
    else:
        # Any collaborator sets values: on a terminal, escape sequences in them must show, not
        # act (move the cursor, rewrite lines, set the title); piped output stays exact.
        escape = sys.stdout.isatty()
        for name, value in variables.items():
            line = f"{name}={value}"
            print(line.translate(CONTROL_ESCAPES) if escape else line)


def parse_assignments(assignments: list[str]) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or not name:
            raise CliError(f"expected NAME=VALUE, got {assignment!r}")
        changes[name] = value
    return changes


def read_env_file(path: Path) -> dict[str, str | None]:
    if str(path) == "-":
        values = dotenv_values(stream=StringIO(sys.stdin.read()))
    else:
        if not path.is_file():
            raise CliError(f"no such file: {path}")
        values = dotenv_values(path)
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise CliError(f"{path}: no value for {', '.join(missing)} (expected NAME=VALUE lines)")
    return dict(values)


def released(changed: dict[str, object]) -> str:
    version = changed.get("release_version")
    return f" (release v{version})" if version else ""


@env.command("set")
def env_set(
    assignments: Annotated[
        list[str] | None, typer.Argument(help="NAME=VALUE pairs.", show_default=False)
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A .env file to read (- for stdin).", show_default=False),
    ] = None,
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Set variables: slipway env set A=1 B=2, or --file .env. All or nothing."""
    changes = read_env_file(file) if file else {}
    changes.update(parse_assignments(assignments or []))
    if not changes:
        raise CliError("nothing to set: give NAME=VALUE pairs or --file")
    name = detect_app(app, remote)
    changed = Api.logged_in().call("PATCH", app_path(name) + "/env", json={"env": changes})
    console.print(f"Set {', '.join(changes)} on {name}{released(changed)}")


@env.command("unset")
def env_unset(
    names: Annotated[list[str], typer.Argument(help="Variable names.")],
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Remove variables. All or nothing: if the app lacks one of them, nothing is removed."""
    name = detect_app(app, remote)
    api = Api.logged_in()
    # The API ignores names it does not have: a typo would pass unnoticed.
    current = api.call("GET", app_path(name) + "/env")["env"]
    missing = [variable for variable in dict.fromkeys(names) if variable not in current]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise CliError(f"{name} has no variable{plural} {', '.join(missing)}; nothing was unset")
    changed = api.call("PATCH", app_path(name) + "/env", json={"env": dict.fromkeys(names)})
    console.print(f"Unset {', '.join(names)} on {name}{released(changed)}")

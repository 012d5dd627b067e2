"""``deployments``, ``deployment-logs`` and ``releases``: what pushes built, and what they
released."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from slipway.cli.appname import app_path, detect_app
from slipway.cli.errors import CliError
from slipway.cli.http import Api
from slipway.cli.options import AppOption, JsonOption, RemoteOption
from slipway.cli.output import show

DEPLOYMENT_COLUMNS = ["id", "status", "commit", "pusher", "release", "created_at", "duration"]
RELEASE_COLUMNS = ["version", "description", "status", "created_by", "created_at", "slug"]


def _deployment_row(deployment: dict[str, Any]) -> dict[str, Any]:
    version = deployment["release_version"]
    duration = deployment["duration"]
    return {
        **deployment,
        "commit": deployment["commit"][:7],
        "release": f"v{version}" if version else "",
        "duration": f"{duration:.1f} s" if duration is not None else "",
    }


def deployments(
    app: AppOption = None, remote: RemoteOption = None, as_json: JsonOption = False
) -> None:
    """List the app's deployments (each push of its deploy branch), newest first."""
    api = Api.logged_in()
    found = api.call("GET", f"{app_path(detect_app(app, remote))}/deployments")["items"]
    if as_json:
        show(found, True)
        return
    show(
        [_deployment_row(d) for d in found],
        False,
        DEPLOYMENT_COLUMNS,
        "no deployments yet: git push the app's deploy branch (main) to build it",
    )


def deployment_logs(
    deployment_id: Annotated[int, typer.Argument(metavar="ID", help="From slipway deployments.")],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Follow a running build until it ends.")
    ] = False,
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Show a deployment's build log (-f follows a running build to its end)."""
    api = Api.logged_in()
    path = f"{app_path(detect_app(app, remote))}/deployments/{deployment_id}"
    for line in api.lines(f"{path}/logs", {"follow": "true" if follow else "false"}):
        print(line, flush=True)
    if follow:
        deployment = api.call("GET", path)
        if deployment["error"]:
            print(f" !     {deployment['status']}: {deployment['error']}")


def releases(
    app: AppOption = None, remote: RemoteOption = None, as_json: JsonOption = False
) -> None:
    """List the app's releases (builds and config changes), newest first."""
    api = Api.logged_in()
    found = api.call("GET", f"{app_path(detect_app(app, remote))}/releases")["items"]
    if as_json:
        show(found, True)
        return
    rows = [
        {
            **r,
            "version": f"v{r['version']}",
            "status": r["status"] or "",
            "slug": f"{r['commit'][:7]} ({r['buildpack']})",
        }
        for r in found
    ]
    show(rows, False, RELEASE_COLUMNS, "no releases yet: git push the app to build one")


def rollback(
    version: Annotated[str, typer.Argument(metavar="vN", help="The release, e.g. v3.")],
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Deploy an earlier release again (its slug and config vars, no build) as a new
    release, with no downtime."""
    number = version.removeprefix("v")
    if not number.isdigit() or int(number) < 1:
        raise CliError(f"{version!r}: name a release as v3 (slipway releases lists them)")
    api = Api.logged_in()
    made = api.call(
        "POST", f"{app_path(detect_app(app, remote))}/rollback", json={"version": int(number)}
    )
    print(f"Rolling back to {version} as v{made['version']}: it takes traffic once it listens")

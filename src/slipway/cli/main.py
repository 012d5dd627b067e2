"""`slipway`: the command users run, with flags that mirror the Scalingo CLI."""

from __future__ import annotations

import typer

from slipway.unbuilt import add_unbuilt

app = typer.Typer(
    name="slipway",
    help="Deploy and run apps on Slipway. The app comes from -a/--app, else SLIPWAY_APP, "
    "else the git remote named by -r/--remote (default: slipway).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

TOP_LEVEL = {
    "login": "Store an API URL and token for later commands.",
    "logout": "Forget the stored token.",
    "whoami": "Show the user the stored token belongs to.",
    "deployments": "List an app's deployments.",
    "logs": "Show an app's logs (-n N, -f to follow, -F to filter).",
    "run": "Run a one-off command in an app's environment: slipway run -- CMD.",
    "db-tunnel": "Open a local port forwarded to an app's database through the SSH gateway.",
    "stats": "Show CPU and memory per process (--stream to refresh).",
    "scale": "Change how many processes of each type run.",
    "restart": "Restart an app's processes.",
    "rollback": "Deploy an earlier release again.",
    "completion": "Print a completion script for bash, zsh or fish.",
}

GROUPS = {
    "keys": (
        "Manage your SSH public keys.",
        {
            "add": "Add an SSH public key (default: the first of ~/.ssh/id_*.pub).",
            "list": "List your SSH keys.",
            "remove": "Remove an SSH key by name.",
        },
    ),
    "apps": (
        "Create and manage apps.",
        {
            "create": "Create an app and add its git remote.",
            "list": "List the apps you can access.",
            "info": "Show an app.",
            "destroy": "Destroy an app and everything it holds.",
        },
    ),
    "collaborators": (
        "Share an app with other users.",
        {
            "add": "Give a user access to an app.",
            "list": "List an app's collaborators.",
            "remove": "Take a user's access away.",
        },
    ),
    "env": (
        "Manage an app's environment variables.",
        {
            "list": "List an app's environment variables.",
            "set": "Set variables: slipway env set A=1 B=2, or --file .env.",
            "unset": "Remove variables.",
        },
    ),
}

for command, help_text in TOP_LEVEL.items():
    add_unbuilt(app, command, help_text)

for group, (group_help, commands) in GROUPS.items():
    sub = typer.Typer(help=group_help, no_args_is_help=True)
    for command, help_text in commands.items():
        add_unbuilt(sub, command, help_text)
    app.add_typer(sub, name=group)

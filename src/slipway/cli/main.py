"""`slipway`: the command users run, with flags that mirror the Scalingo CLI."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from slipway import __version__
from slipway.cli import account, deployments, logs, processes, run, tunnel
from slipway.cli.addons import addons
from slipway.cli.apps import apps, collaborators, env
from slipway.cli.completion import script, setup_completion
from slipway.cli.domains import domains
from slipway.cli.errors import CliError

app = typer.Typer(
    name="slipway",
    help="Deploy and run apps on Slipway. The app comes from -a/--app, else SLIPWAY_APP, "
    "else the git remote named by -r/--remote (default: slipway).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_debug = False
setup_completion()


def show_version(value: bool) -> None:
    if value:
        print(f"slipway {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Show tracebacks on errors (also accepted after the command)."
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=show_version
        ),
    ] = False,
) -> None:
    global _debug
    _debug = debug


app.command()(account.login)
app.command()(account.logout)
app.command()(account.whoami)
app.add_typer(account.keys, name="keys")
app.add_typer(account.tokens, name="tokens")
app.add_typer(apps, name="apps")
app.add_typer(collaborators, name="collaborators")
app.add_typer(env, name="env")
app.add_typer(addons, name="addons")
app.add_typer(domains, name="domains")
app.command()(deployments.deployments)
app.command("deployment-logs")(deployments.deployment_logs)
app.command()(deployments.releases)
app.command()(deployments.rollback)
app.command()(logs.logs)
app.command()(processes.ps)
app.command()(processes.scale)
app.command()(processes.restart)
app.command("open")(processes.open_app)
app.command()(processes.stats)
# Options end at the command: `slipway run python -c ...` passes -c to python.
app.command(context_settings={"allow_interspersed_args": False})(run.run)
app.command("db-tunnel")(tunnel.db_tunnel)


@app.command()
def completion(shell: Annotated[str, typer.Argument(help="bash, zsh or fish.")]) -> None:
    """Print a completion script, e.g. eval "$(slipway completion bash)" in ~/.bashrc."""
    print(script(shell))


def debug_first(args: list[str]) -> list[str]:
    """Click takes a group's options only before the subcommand; people add --debug at the
    end, after a failure. Every --debug before a ``--`` moves to the front (after ``--`` it
    is an argument, and ``--opt=--debug`` passes the text itself to an option)."""
    end = args.index("--") if "--" in args else len(args)
    kept = [arg for arg in args[:end] if arg != "--debug"]
    return (["--debug"] if len(kept) < end else []) + kept + args[end:]


def main() -> None:
    """The console script: errors are one line on stderr, with a traceback only on --debug.

    Typer reports usage errors itself (exit status 2); our own errors and unexpected ones
    come out of it and are reported here.
    """
    try:
        app(args=debug_first(sys.argv[1:]))
    except CliError as error:
        if _debug:
            raise
        print(f"slipway: {error.message}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("slipway: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        if _debug:
            raise
        print(f"slipway: unexpected error: {error} (run with --debug for details)", file=sys.stderr)
        sys.exit(1)

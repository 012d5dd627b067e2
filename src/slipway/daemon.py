"""`slipwayd`: the server roles and the administration commands, one subcommand each."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from slipway.config import Settings, load_settings
from slipway.redis_server import redis_service
from slipway.supervisor import Service, ServiceError, Supervisor
from slipway.unbuilt import add_unbuilt

app = typer.Typer(
    name="slipwayd",
    help="Slipway servers and administration. Settings come from flags, else SLIPWAY_* "
    "variables (SLIPWAY_DATA_DIR, SLIPWAY_HTTP_PORT, SLIPWAY_SSH_PORT, SLIPWAY_REDIS_URL, "
    "SLIPWAY_DATABASE_URL), else defaults.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where Slipway keeps its data [SLIPWAY_DATA_DIR].")
]
HttpPort = Annotated[
    int | None, typer.Option("--http-port", help="HTTP API port [SLIPWAY_HTTP_PORT, 8080].")
]
SshPort = Annotated[
    int | None, typer.Option("--ssh-port", help="SSH gateway port [SLIPWAY_SSH_PORT, 2222].")
]
RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis to use [SLIPWAY_REDIS_URL]; `up` starts its own."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL [SLIPWAY_DATABASE_URL, SQLite]."),
]

NOT_YET_STARTED = {
    "api": "HTTP API on :{http_port}",
    "gateway": "SSH gateway on :{ssh_port}",
    "worker": "job worker",
    "runner": "app runner and router",
}

NEXT_STEPS = """\
Next steps:
  1. Create a user:     slipwayd admin create-user alice --admin   (prints an API token)
  2. Log in:            slipway login --api-url http://{host}:{http_port} --token TOKEN
  3. Add your SSH key:  slipway keys add
  4. Create an app:     slipway apps create hello   (inside the app's git repository)
  5. Deploy it:         git push slipway main
"""


def _embedded_services(settings: Settings) -> list[Service]:
    services = []
    if settings.redis_url is None:
        services.append(redis_service(settings.data_dir / "redis"))
    return services


@app.command()
def up(
    data_dir: DataDir = None,
    http_port: HttpPort = None,
    ssh_port: SshPort = None,
    redis_url: RedisUrl = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the whole platform in the foreground; Ctrl-C stops everything."""
    settings = load_settings(
        data_dir=data_dir,
        http_port=http_port,
        ssh_port=ssh_port,
        redis_url=redis_url,
        database_url=database_url,
    )
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    supervisor = Supervisor(_embedded_services(settings))
    try:
        supervisor.start()
    except ServiceError as error:
        typer.echo(f"slipwayd up: {error}", err=True)
        raise typer.Exit(1) from error

    print(f"Slipway is up; data in {settings.data_dir}. Ctrl-C stops everything.")
    for service in supervisor.services:
        print(f"  {service.name:<8} {service.listens}  (pid {service.pid})")
    if settings.redis_url is not None:
        print(f"  {'redis':<8} {settings.redis_url}  (external)")
    values = settings.model_dump()
    print("Not started, not built yet:")
    for name, what in NOT_YET_STARTED.items():
        print(f"  {name:<8} {what.format(**values)}")
    print(NEXT_STEPS.format(**values), end="")
    sys.stdout.flush()

    exited = supervisor.wait()
    supervisor.stop()
    if exited is not None:
        typer.echo(
            f"slipwayd up: {exited.name} exited unexpectedly "
            f"(status {exited.returncode}); stopped everything",
            err=True,
        )
        raise typer.Exit(1)
    print("Slipway stopped.")


add_unbuilt(app, "api", "Serve the HTTP API (public /v1 and internal /internal).")
add_unbuilt(app, "gateway", "Serve the SSH gateway for git push, fetch and db-tunnel.")
add_unbuilt(
    app, "worker", "Run background jobs (Sidekiq-compatible; mirrors `sidekiq -r -q -c -t`)."
)
add_unbuilt(app, "runner", "Run apps' processes, collect logs and stats, configure the router.")
add_unbuilt(app, "git-shell", "Serve one git command for the gateway (called by it, not by hand).")
add_unbuilt(app, "hook", "Git hook entry point (called by git, not by hand).")
add_unbuilt(app, "migrate", "Apply the store's database migrations.")

admin = typer.Typer(help="Administration: users and tokens.", no_args_is_help=True)
add_unbuilt(admin, "create-user", "Create a user and print its API token.")
app.add_typer(admin, name="admin")

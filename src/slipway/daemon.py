"""`slipwayd`: the server roles and the administration commands, one subcommand each."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from slipway.config import Settings, load_settings
from slipway.jobs.client import redis_url_from_env
from slipway.jobs.launcher import WorkerConfig, parse_queues, run_worker
from slipway.jobs.registry import registered, require
from slipway.logs import setup_logging
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
    "worker": "job worker (starts with the builder, which brings Slipway's own jobs)",
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


LOG_LEVELS = ("debug", "info", "warning", "error")


@app.command(no_args_is_help=False)
def worker(
    requires: Annotated[
        list[str] | None,
        typer.Option(
            "-r",
            "--require",
            help="A module (dotted name) or .py file defining jobs; repeatable.",
        ),
    ] = None,
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "-q",
            "--queue",
            help="QUEUE[,WEIGHT]; repeatable. Without weights the order is strict. "
            "[default: default]",
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("-c", "--concurrency", min=1, help="Jobs run at once.")
    ] = 10,
    timeout: Annotated[
        float, typer.Option("-t", "--timeout", min=0, help="Seconds busy jobs get on shutdown.")
    ] = 25.0,
    redis_url: Annotated[
        str | None,
        typer.Option("--redis-url", help="Redis URL [REDIS_URL, else SLIPWAY_REDIS_URL]."),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Prefix for every key, as redis-namespace.")
    ] = None,
    reliable: Annotated[
        bool,
        typer.Option(
            "--reliable/--no-reliable",
            help="At-least-once fetch: jobs of a killed worker are run again by another.",
        ),
    ] = False,
    tag: Annotated[str, typer.Option("-g", "--tag", help="Shown in the Web UI.")] = "",
    poll_interval: Annotated[
        float | None,
        typer.Option(
            "--poll-interval",
            min=0.01,
            help="Average seconds between polls of the retry and schedule sets "
            "[default: 5 x the number of processes].",
        ),
    ] = None,
    log_format: Annotated[str, typer.Option("--log-format", help="text or json.")] = "text",
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info (one line per job), warning or error.")
    ] = "info",
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Same as --log-level debug.")
    ] = False,
    # Timing knobs for tests and the impatient; Sidekiq's values by default.
    heartbeat_interval: Annotated[float, typer.Option(hidden=True, min=0.01)] = 5.0,
    heartbeat_ttl: Annotated[int, typer.Option(hidden=True, min=1)] = 60,
    recovery_interval: Annotated[float, typer.Option(hidden=True, min=0.01)] = 60.0,
) -> None:
    """Run background jobs: a Sidekiq-compatible worker (mirrors `sidekiq -r -q -c -t`).

    TERM or INT stops fetching, waits up to TIMEOUT for busy jobs, then pushes the rest back;
    TSTP stops fetching (quiet). Sidekiq's Web UI can send both too.
    """
    if log_format not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--log-format")
    level = logging.getLevelNamesMapping().get("DEBUG" if verbose else log_level.upper())
    if level is None or log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(
            f"must be one of {', '.join(LOG_LEVELS)}", param_hint="--log-level"
        )
    try:
        queue_list, strict = parse_queues(queues or [])
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="-q") from error
    setup_logging(log_format, level)
    for target in requires or []:
        try:
            require(target)
        except Exception as error:
            typer.echo(f"slipwayd worker: cannot load {target}: {error}", err=True)
            raise typer.Exit(1) from error
    if not registered():
        logging.getLogger("slipway.jobs").warning(
            "no Python jobs are registered (use -r); jobs will fail as unknown classes"
        )
    run_worker(
        WorkerConfig(
            redis_url=redis_url or redis_url_from_env(),
            namespace=namespace,
            queues=queue_list,
            strict=strict,
            concurrency=concurrency,
            timeout=timeout,
            reliable=reliable,
            tag=tag,
            poll_interval_average=poll_interval,
            heartbeat_interval=heartbeat_interval,
            heartbeat_ttl=heartbeat_ttl,
            recovery_interval=recovery_interval,
        )
    )


add_unbuilt(app, "api", "Serve the HTTP API (public /v1 and internal /internal).")
add_unbuilt(app, "gateway", "Serve the SSH gateway for git push, fetch and db-tunnel.")
add_unbuilt(app, "runner", "Run apps' processes, collect logs and stats, configure the router.")
add_unbuilt(app, "git-shell", "Serve one git command for the gateway (called by it, not by hand).")
add_unbuilt(app, "hook", "Git hook entry point (called by git, not by hand).")
add_unbuilt(app, "migrate", "Apply the store's database migrations.")

admin = typer.Typer(help="Administration: users and tokens.", no_args_is_help=True)
add_unbuilt(admin, "create-user", "Create a user and print its API token.")
app.add_typer(admin, name="admin")

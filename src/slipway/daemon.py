"""`slipwayd`: the server roles and the administration commands, one subcommand each."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import asyncssh
import typer

from slipway.api.run import serve_api
from slipway.builder import gitshell
from slipway.config import Settings, load_settings
from slipway.gateway.limits import ConnectionLimits
from slipway.gateway.run import run_gateway
from slipway.gateway.server import GatewayConfig
from slipway.graceful import listen
from slipway.jobs.client import redis_url_from_env
from slipway.jobs.launcher import WorkerConfig, parse_queues
from slipway.jobs.registry import registered, require
from slipway.logs import setup_logging
from slipway.redis_server import redis_service
from slipway.store import accounts
from slipway.store.db import Database
from slipway.store.errors import StoreError
from slipway.store.migrate import migrate
from slipway.supervisor import Service, ServiceError, Supervisor
from slipway.unbuilt import add_unbuilt
from slipway.worker_process import serve_worker

app = typer.Typer(
    name="slipwayd",
    help="Slipway servers and administration. Settings come from flags, else SLIPWAY_* "
    "variables (SLIPWAY_DATA_DIR, SLIPWAY_HTTP_PORT, SLIPWAY_SSH_PORT, SLIPWAY_REDIS_URL, "
    "SLIPWAY_DATABASE_URL), else defaults.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def private_files() -> None:
    """Files Slipway writes hold secrets (token hashes, env values, keys): owner only."""
    os.umask(0o077)


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


def _child_env(settings: Settings) -> dict[str, str]:
    """The environment of `up`'s children: the same settings, explicitly."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLIPWAY_")}
    env.update(
        SLIPWAY_DATA_DIR=str(settings.data_dir),
        SLIPWAY_HOST=settings.host,
        SLIPWAY_HTTP_PORT=str(settings.http_port),
        SLIPWAY_SSH_PORT=str(settings.ssh_port),
        SLIPWAY_DATABASE_URL=settings.effective_database_url,
    )
    if settings.redis_url:
        env["SLIPWAY_REDIS_URL"] = settings.redis_url
    if settings.public_host:
        env["SLIPWAY_PUBLIC_HOST"] = settings.public_host
    return env


def _embedded_services(settings: Settings) -> list[Service]:
    """redis-server, then our servers; the supervisor holds their listening sockets, so an
    upgrade (HUP) never closes a port."""
    services = []
    if settings.redis_url is None:
        redis = redis_service(settings.data_dir / "redis")
        services.append(redis)
        settings = settings.model_copy(update={"redis_url": redis.listens})
    env = _child_env(settings)
    try:
        http = listen(settings.host, settings.http_port)
        ssh = listen(settings.host, settings.ssh_port)
    except OSError as error:
        raise ServiceError(f"cannot listen on {settings.host}: {error.strerror}") from error
    role = [sys.executable, "-m", "slipway.daemon"]
    services.append(
        Service(
            name="api",
            argv=[*role, "api"],
            env=env,
            sockets={"http": http},
            listens=f"http://{settings.host}:{settings.http_port}",
            log_path=str(settings.data_dir / "api.log"),
        )
    )
    services.append(
        Service(
            name="gateway",
            argv=[*role, "gateway"],
            env=env,
            sockets={"ssh": ssh},
            listens=f"ssh://git@{settings.effective_public_host}:{settings.ssh_port}",
            log_path=str(settings.data_dir / "gateway.log"),
        )
    )
    return services


def host_key_fingerprints(directory: Path) -> list[str]:
    """What ssh shows the first time it meets the gateway, so users can check it."""
    found = []
    for public in sorted(directory.glob("ssh_host_*_key.pub")):
        key = asyncssh.import_public_key(public.read_text())
        found.append(f"{key.get_fingerprint('sha256')} ({key.get_algorithm()})")
    return found


@app.command()
def up(
    data_dir: DataDir = None,
    http_port: HttpPort = None,
    ssh_port: SshPort = None,
    redis_url: RedisUrl = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the whole platform in the foreground; Ctrl-C stops everything.

    HUP upgrades it in place: each server's new version starts on the same sockets, and the
    old one drains once the new one is ready.
    """
    settings = load_settings(
        data_dir=data_dir,
        http_port=http_port,
        ssh_port=ssh_port,
        redis_url=redis_url,
        database_url=database_url,
    )
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        supervisor = Supervisor(_embedded_services(settings))
        supervisor.start()
    except ServiceError as error:
        typer.echo(f"slipwayd up: {error}", err=True)
        raise typer.Exit(1) from error

    print(
        f"Slipway is up; data in {settings.data_dir}. Ctrl-C stops everything; "
        f"kill -HUP {os.getpid()} upgrades it in place."
    )
    for service in supervisor.services:
        log = f", log {service.log_path}" if service.log_path else ""
        print(f"  {service.name:<8} {service.listens}  (pid {service.pid}{log})")
    for fingerprint in host_key_fingerprints(settings.data_dir / "gateway"):
        print(f"  {'':<8} host key {fingerprint}")
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
    pid_file: Annotated[
        Path | None,
        typer.Option(
            help="Where to write this process's PID (replaced when an upgrade takes over)."
        ),
    ] = None,
) -> None:
    """Run background jobs: a Sidekiq-compatible worker (mirrors `sidekiq -r -q -c -t`).

    TERM or INT stops fetching, waits up to TIMEOUT for busy jobs, then pushes the rest back;
    TSTP stops fetching (quiet). Sidekiq's Web UI can send both too. HUP starts the new
    version and, once it runs, drains this one.
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
    config = WorkerConfig(
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
    asyncio.run(serve_worker(config, pid_file))


Host = Annotated[str | None, typer.Option("--host", help="Address to listen on [SLIPWAY_HOST].")]


def _database(settings: Settings) -> Database:
    database = Database(settings.effective_database_url)
    migrate(database.engine)
    return database


@app.command()
def api(
    data_dir: DataDir = None,
    host: Host = None,
    http_port: HttpPort = None,
    ssh_port: SshPort = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the HTTP API (public /v1 and internal /internal); applies migrations first.

    HUP starts the new version on the same socket; once it serves, this one finishes its
    requests and exits.
    """
    settings = load_settings(
        data_dir=data_dir,
        host=host,
        http_port=http_port,
        ssh_port=ssh_port,
        database_url=database_url,
    )
    setup_logging()
    database = _database(settings)
    asyncio.run(serve_api(settings, database))


@app.command("migrate")
def migrate_command(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Apply the store's database migrations (the API also does at start)."""
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    database = _database(settings)
    print(f"database at the latest schema: {database.engine.url.render_as_string()}")


add_unbuilt(app, "runner", "Run apps' processes, collect logs and stats, configure the router.")
add_unbuilt(app, "hook", "Git hook entry point (called by git, not by hand).")


@app.command()
def gateway(
    data_dir: DataDir = None,
    host: Host = None,
    ssh_port: SshPort = None,
    http_port: HttpPort = None,
    api_url: Annotated[
        str | None,
        typer.Option("--api-url", help="The control plane [default: http://HOST:HTTP_PORT]."),
    ] = None,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", help="Prometheus metrics port (0: none).")
    ] = 0,
    proxy_allowed: Annotated[
        list[str] | None,
        typer.Option(
            "--proxy-allowed",
            help="A load balancer address or network whose PROXY protocol "
            "headers are trusted; repeatable.",
        ),
    ] = None,
    rate: Annotated[float, typer.Option(help="New connections per second per client.")] = 10.0,
    burst: Annotated[int, typer.Option(help="Burst of new connections per client.")] = 60,
    max_unauthenticated: Annotated[
        int, typer.Option(help="Connections allowed to be authenticating at once.")
    ] = 100,
    login_grace: Annotated[float, typer.Option(help="Seconds to authenticate.")] = 30.0,
    upstream_key: Annotated[
        Path | None, typer.Option(help="Platform private key for repo hosts.")
    ] = None,
    upstream_known_hosts: Annotated[
        Path | None, typer.Option(help="known_hosts file with the repo hosts' keys.")
    ] = None,
    upstream_command: Annotated[
        str, typer.Option(help="The git-shell command on repo hosts.")
    ] = "slipwayd git-shell",
    allow_chacha20: Annotated[
        bool,
        typer.Option(help="Also offer chacha20-poly1305 (clients prefer it; AES-GCM is faster)."),
    ] = False,
    max_drain: Annotated[
        float, typer.Option(help="Seconds sessions may run on after a stop or an upgrade.")
    ] = 3600.0,
) -> None:
    """Serve the SSH gateway: git push and fetch, and database tunnels.

    HUP starts the new version on the same socket; once it serves, this one lets its sessions
    finish (up to --max-drain) and exits.
    """
    settings = load_settings(data_dir=data_dir, host=host, ssh_port=ssh_port, http_port=http_port)
    setup_logging()
    api_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    config = GatewayConfig(
        api_url=api_url or f"http://{api_host}:{settings.http_port}",
        internal_secret=settings.effective_internal_secret(),
        data_dir=settings.data_dir,
        login_grace=login_grace,
        proxy_allowed=proxy_allowed or [],
        limits=ConnectionLimits(rate=rate, burst=burst, max_unauthenticated=max_unauthenticated),
        upstream_key=upstream_key,
        upstream_known_hosts=upstream_known_hosts,
        upstream_command=upstream_command,
        allow_chacha20=allow_chacha20,
    )
    asyncio.run(run_gateway(config, settings.host, settings.ssh_port, metrics_port, max_drain))


@app.command("git-shell")
def git_shell(
    verb: Annotated[
        str, typer.Argument(help="git-receive-pack, git-upload-pack or git-upload-archive.")
    ],
    app_name: Annotated[str, typer.Argument(metavar="APP")],
    data_dir: DataDir = None,
) -> None:
    """Serve one git command for the gateway (called by it, not by hand)."""
    settings = load_settings(data_dir=data_dir)
    raise typer.Exit(gitshell.main(["--data-dir", str(settings.data_dir), verb, app_name]))


admin = typer.Typer(help="Administration: users and tokens.", no_args_is_help=True)
app.add_typer(admin, name="admin")


@admin.command("create-user")
def create_user(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, - and _.")],
    is_admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a user and print a new API token for it (only the token, on stdout)."""
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    database = _database(settings)
    try:
        with database.session() as session:
            user = accounts.create_user(session, name, is_admin=is_admin)
            new = accounts.create_token(session, user, "created by slipwayd admin")
    except StoreError as error:
        typer.echo(f"slipwayd admin create-user: {error.message}", err=True)
        raise typer.Exit(1) from error
    print(new.token)


if __name__ == "__main__":
    app()

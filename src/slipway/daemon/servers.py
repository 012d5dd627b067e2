"""The server roles, one command each: `api`, `gateway`, `worker`, and `git-shell` (run by
the gateway on repo hosts). Each imports its role only when it runs, so that a role starts
(and an upgrade's new process is ready) without loading the others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from slipway.config import load_settings
from slipway.daemon.options import DatabaseUrl, DataDir, Host, HttpPort, SshPort
from slipway.daemon.serverlog import hot_lines, setup_logging

if TYPE_CHECKING:
    from slipway.gateway.limits import ConnectionLimits

LOG_LEVELS = ("debug", "info", "warning", "error")


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
    from slipway.daemon.worker import serve_worker
    from slipway.jobs.client import redis_url_from_env
    from slipway.jobs.connection import connection_options
    from slipway.jobs.launcher import WorkerConfig, parse_queues
    from slipway.jobs.processor import job_log
    from slipway.jobs.registry import registered, require

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
    url = redis_url or redis_url_from_env()
    try:
        connection_options(url)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--redis-url") from error
    config = WorkerConfig(
        redis_url=url,
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
        job_lines=lines.write if (lines := hot_lines(job_log)) else None,
    )
    asyncio.run(serve_worker(config, pid_file))


def api(
    data_dir: DataDir = None,
    host: Host = None,
    http_port: HttpPort = None,
    ssh_port: SshPort = None,
    database_url: DatabaseUrl = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "-w",
            "--workers",
            min=1,
            max=64,
            help="Processes serving the socket [SLIPWAY_API_WORKERS, one per CPU].",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (public /v1 and internal /internal); applies migrations first.

    HUP starts the new version on the same socket; once it serves, this one finishes its
    requests and exits. A worker that dies is replaced.
    """
    settings = load_settings(
        data_dir=data_dir,
        host=host,
        http_port=http_port,
        ssh_port=ssh_port,
        database_url=database_url,
        api_workers=workers,
    )
    setup_logging()
    # Before prometheus_client is imported: every worker's counts, summed on each scrape.
    with shared_metrics_dir(settings.data_dir):
        from slipway.api.run import serve_api
        from slipway.store.db import MAX_CONNECTIONS, Database
        from slipway.store.migrate import migrate

        count = settings.api_workers or os.cpu_count() or 1
        # The workers share the connections one API process would open, not multiply them.
        database = Database(settings.effective_database_url, max(4, MAX_CONNECTIONS // count))
        migrate(database.engine)
        raise typer.Exit(serve_api(settings, database, count))


METRICS_DIR_PREFIX = "api-metrics."


@contextlib.contextmanager
def shared_metrics_dir(data_dir: Path) -> Iterator[None]:
    """prometheus_client's multiprocess mode for the API's workers: a directory of their
    counts, one per generation (an upgrade's new API starts its own), removed at exit along
    with any that an API killed before it could clean up left behind."""
    import psutil

    for stale in data_dir.glob(METRICS_DIR_PREFIX + "*"):
        pid = stale.name.removeprefix(METRICS_DIR_PREFIX)
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    path = data_dir / f"{METRICS_DIR_PREFIX}{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)  # read by prometheus_client's import
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


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
    max_startups: Annotated[
        str,
        typer.Option(
            help="START:RATE:FULL as OpenSSH's MaxStartups: beyond START connections "
            "authenticating at once, refuse RATE% of new ones, rising to all at FULL."
        ),
    ] = "30:30:200",
    per_source_max_startups: Annotated[
        int, typer.Option(help="Connections authenticating at once per client (IPv6: per /64).")
    ] = 10,
    max_connections_per_user: Annotated[
        int, typer.Option(help="Authenticated connections at once per user.")
    ] = 50,
    login_grace: Annotated[float, typer.Option(help="Seconds to authenticate.")] = 30.0,
    handshake_timeout: Annotated[
        float, typer.Option(help="Seconds for the version and key exchanges.")
    ] = 10.0,
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
    from slipway.gateway.config import GatewayConfig
    from slipway.gateway.run import run_gateway

    settings = load_settings(data_dir=data_dir, host=host, ssh_port=ssh_port, http_port=http_port)
    setup_logging()
    api_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    try:
        secret = settings.effective_internal_secret()
    except ValueError as error:
        typer.echo(f"slipwayd gateway: {error}", err=True)
        raise typer.Exit(1) from None
    config = GatewayConfig(
        api_url=api_url or f"http://{api_host}:{settings.http_port}",
        internal_secret=secret,
        data_dir=settings.data_dir,
        login_grace=login_grace,
        handshake_timeout=handshake_timeout,
        max_connections_per_user=max_connections_per_user,
        proxy_allowed=proxy_allowed or [],
        limits=_startup_limits(max_startups, per_source_max_startups, rate, burst),
        upstream_key=upstream_key,
        upstream_known_hosts=upstream_known_hosts,
        upstream_command=upstream_command,
        allow_chacha20=allow_chacha20,
        local_repositories=settings.local_repositories,
    )
    import uvloop

    uvloop.run(run_gateway(config, settings.host, settings.ssh_port, metrics_port, max_drain))


def _startup_limits(
    max_startups: str, per_source: int, rate: float, burst: int
) -> ConnectionLimits:
    from slipway.gateway.limits import ConnectionLimits

    try:
        start, drop, full = (int(part) for part in max_startups.split(":"))
    except ValueError:
        raise typer.BadParameter(
            "use START:RATE:FULL, e.g. 30:30:200", param_hint="--max-startups"
        ) from None
    if not 0 < start <= full or not 0 <= drop <= 100:
        raise typer.BadParameter(
            "need 0 < START <= FULL and 0 <= RATE <= 100", param_hint="--max-startups"
        )
    return ConnectionLimits(
        rate=rate, burst=burst, per_source=per_source, start=start, drop_rate=drop / 100, full=full
    )


def git_shell(
    verb: Annotated[
        str, typer.Argument(help="git-receive-pack, git-upload-pack or git-upload-archive.")
    ],
    repository: Annotated[str, typer.Argument(help="The app's uid, which names its repository.")],
    app_name: Annotated[str, typer.Argument(metavar="APP", help="The app's name, for messages.")],
    user: Annotated[
        str | None, typer.Argument(help="Who pushes (their deployment names them).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve one git command for the gateway (called by it, not by hand)."""
    from slipway.builder import gitshell

    settings = load_settings(data_dir=data_dir)
    words = [verb, repository, app_name, *([user] if user else [])]
    raise typer.Exit(gitshell.main(["--data-dir", str(settings.data_dir), *words]))


def hook(
    name: Annotated[str, typer.Argument(metavar="HOOK", help="pre-receive or post-receive.")],
) -> None:
    """Run a git hook of a Slipway repository (git calls it, from the repository)."""
    from slipway.builder import hooks

    raise typer.Exit(hooks.main([name]))


def runner(
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Redis URL [SLIPWAY_REDIS_URL].")
    ] = None,
    concurrency: Annotated[int, typer.Option("-c", "--concurrency", min=1)] = 4,
) -> None:
    """Run apps' releases on this host: deploy, scale, restart and stop jobs from the queue
    runner-NAME (SLIPWAY_RUNNER_NAME, default local). When it starts, it adopts the
    instances a previous runner left running and starts the current release of the apps
    placed on it; its apps outlive it (`slipwayd up` stops them with the platform). On the
    router's host it also takes the queue `router`: apps' domains and their certificates."""
    from slipway.runtime.jobs import bring_up_current_releases, runner_queue

    settings = load_settings()
    threading.Thread(target=bring_up_current_releases, name="bring-up", daemon=True).start()
    requires, queues = ["slipway.runtime.jobs"], [runner_queue(settings.runner_name)]
    if settings.router_dir is None:  # the router's host: its domains and certificates too
        from slipway.certs import issuer

        issuer.start(settings)
        requires.append("slipway.certs.issuer")
        queues.append(issuer.ROUTER_QUEUE)
    worker(
        requires=requires,
        queues=queues,
        concurrency=concurrency,
        timeout=10.0,
        reliable=True,
        tag="slipway-runner",
        redis_url=redis_url or settings.redis_url,
    )

"""`slipwayd up`: the embedded platform in the foreground, one supervised child per part.

It holds its data dir (one `up` per data dir), migrates the store once before any child
starts, starts redis-server (unless given a Redis), the router (HAProxy), the repo host's
worker, the API and the gateway, prints where they listen and what to do next, and
upgrades our servers in place on HUP (redis-server and HAProxy keep running).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from slipway.config import Settings, load_settings
from slipway.daemon.options import (
    DatabaseUrl,
    DataDir,
    Host,
    HttpPort,
    RedisUrl,
    RouterHttpsPort,
    RouterPort,
    SshPort,
)

if TYPE_CHECKING:  # the rest is imported by `up` when it runs: every slipwayd command loads
    # this module, git hooks included, and they need none of it
    from slipway.embedded.supervisor import Service, Supervisor
    from slipway.store.db import Database

NEXT_STEPS = """\
Next steps:
  1. Create a user:     slipwayd admin create-user alice --admin   (prints an API token)
  2. Log in:            slipway login --api-url http://{host}:{http_port} --token TOKEN
  3. Add your SSH key:  slipway keys add
  4. Create an app:     slipway apps create hello   (inside the app's git repository)
  5. Deploy it:         git push slipway main
"""


def _child_env(settings: Settings) -> dict[str, str]:
    """The environment of `up`'s children: ours, with the settings `up` was given."""
    env = dict(os.environ)
    env.update(
        SLIPWAY_DATA_DIR=str(settings.data_dir),
        SLIPWAY_HOST=settings.host,
        SLIPWAY_HTTP_PORT=str(settings.http_port),
        SLIPWAY_SSH_PORT=str(settings.ssh_port),
        SLIPWAY_DATABASE_URL=settings.effective_database_url,
        SLIPWAY_ROUTER_PORT=str(settings.router_port),
        SLIPWAY_ROUTER_HTTPS_PORT=str(settings.router_https_port),
    )
    if settings.redis_url:
        env["SLIPWAY_REDIS_URL"] = settings.redis_url
    return env


def _listen(host: str, port: int, setting: str) -> socket.socket:
    from slipway.embedded.supervisor import ServiceError
    from slipway.graceful import listen

    try:
        return listen(host, port)
    except OSError as error:
        reason = error.strerror or str(error)
        raise ServiceError(f"cannot listen on {host}:{port} ({setting}): {reason}") from error


PLATFORM_JOBS = "slipway.builder.jobs"
ADDON_CHECK_SECONDS = 5.0  # how soon an add-on server that died is started again


def _embedded_services(settings: Settings) -> list[Service]:
    """redis-server, then our servers; the supervisor holds their listening sockets, so an
    upgrade (HUP) never closes a port."""
    from slipway.applog.routerlog import SOCKET_NAME, listen_for_lines
    from slipway.builder.repositories import repo_queue
    from slipway.embedded.redis_server import redis_service
    from slipway.embedded.supervisor import Service
    from slipway.router.haproxy import RouterFiles, router_service
    from slipway.runtime.jobs import runner_queue

    services = []
    if settings.redis_url is None:
        redis = redis_service(settings.data_dir / "redis")
        services.append(redis)
        settings = settings.model_copy(update={"redis_url": redis.listens})
    _listen(settings.host, settings.router_port, "--router-port / SLIPWAY_ROUTER_PORT").close()
    https = "--router-https-port / SLIPWAY_ROUTER_HTTPS_PORT"
    _listen(settings.host, settings.router_https_port, https).close()
    router_dir = settings.data_dir / "router"
    services.append(
        router_service(
            router_dir,
            settings.host,
            settings.router_port,
            settings.router_slots,
            settings.router_timeout,
            settings.apps_domain,
            settings.router_https_port,
        )
    )
    env = _child_env(settings)
    http = _listen(settings.host, settings.http_port, "--http-port / SLIPWAY_HTTP_PORT")
    ssh = _listen(settings.host, settings.ssh_port, "--ssh-port / SLIPWAY_SSH_PORT")
    role = [sys.executable, "-m", "slipway.daemon"]
    queue = repo_queue(settings.repo_host)
    services.append(
        Service(
            name="worker",
            argv=[
                *role,
                *("worker", "-r", PLATFORM_JOBS, "-q", queue, "-c", "2", "--reliable"),
                # An upgrade lets running builds finish rather than cut them.
                *("-t", str(settings.build_timeout + 30)),
                *("--tag", "slipway", "--pid-file", str(settings.data_dir / "worker.pid")),
                *("--redis-url", settings.redis_url or ""),  # not a REDIS_URL of the shell's
            ],
            env=env,
            sockets={},  # none, but it says when it is ready and upgrades like the others
            listens=f"jobs of the queue {queue}",
            log_path=str(settings.data_dir / "worker.log"),
        )
    )
    services.append(
        Service(
            name="runner",
            argv=[*role, "runner", "--redis-url", settings.redis_url or ""],
            env=env,
            # The router's lines: HAProxy spins while nothing listens there, so the socket
            # outlives each runner. The new runner adopts the apps.
            sockets={SOCKET_NAME: listen_for_lines(RouterFiles(router_dir).log_socket)},
            listens=f"deploys from the queue {runner_queue()}",
            log_path=str(settings.data_dir / "runner.log"),
        )
    )
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


def known_hosts_lines(directory: Path, host: str, port: int) -> list[str]:
    """What ssh would ask about the first time it meets the gateway, as known_hosts lines
    with their SHA256 fingerprints."""
    import asyncssh

    name = host if port == 22 else f"[{host}]:{port}"
    lines = []
    for public in sorted(directory.glob("ssh_host_*_key.pub")):
        key = asyncssh.import_public_key(public.read_text())
        exported = key.export_public_key("openssh").decode().split()[:2]
        lines.append(f"{name} {' '.join(exported)}   # {key.get_fingerprint('sha256')}")
    return lines


PID_FILES = ("api.pid", "gateway.pid", "worker.pid")


def up(
    data_dir: DataDir = None,
    host: Host = None,
    http_port: HttpPort = None,
    ssh_port: SshPort = None,
    redis_url: RedisUrl = None,
    database_url: DatabaseUrl = None,
    router_port: RouterPort = None,
    router_https_port: RouterHttpsPort = None,
) -> None:
    """Run the whole platform in the foreground; Ctrl-C stops everything.

    HUP upgrades it in place: each server's new version starts on the same sockets, and the
    old one drains once the new one is ready.
    """
    from slipway.addons.services import Services
    from slipway.embedded.datadir import AlreadyRunning, DataDirLock
    from slipway.embedded.supervisor import ServiceError, Supervisor
    from slipway.store.db import Database
    from slipway.store.migrate import migrate

    settings = load_settings(
        data_dir=data_dir,
        host=host,
        http_port=http_port,
        ssh_port=ssh_port,
        redis_url=redis_url,
        database_url=database_url,
        router_port=router_port,
        router_https_port=router_https_port,
    )
    lock = DataDirLock(settings.data_dir)
    addon_services = Services(settings)
    addons_started = False
    try:
        lock.acquire()
        database = Database(settings.effective_database_url)
        migrate(database.engine)  # once, before any child can race another to it
        adopt_repositories(settings, database)
        abandon_builds(database)
        database.dispose()
        addons_started = True
        addon_services.start_all()
        supervisor = Supervisor(_embedded_services(settings))
        supervisor.start()
    except (AlreadyRunning, ServiceError, ValueError) as error:
        if addons_started:
            addon_services.stop_all()
        typer.echo(f"slipwayd up: {error}", err=True)
        raise typer.Exit(1) from error
    except KeyboardInterrupt:  # the supervisor has stopped what it had started
        if addons_started:
            addon_services.stop_all()
        typer.echo("slipwayd up: interrupted while starting; stopped everything", err=True)
        raise typer.Exit(130) from None
    try:
        exited = supervisor.wait(
            announce=lambda: _banner(settings, supervisor),
            every=(ADDON_CHECK_SECONDS, addon_services.keep_running),
        )
        supervisor.stop()
    finally:
        stop_apps(settings)
        addon_services.stop_all()
        _remove_stale_pid_files(settings.data_dir)
        lock.release()
    if exited is not None:
        typer.echo(
            f"slipwayd up: {exited.name} exited unexpectedly "
            f"(status {exited.returncode}); stopped everything",
            err=True,
        )
        raise typer.Exit(1)
    print("Slipway stopped.")


def stop_apps(settings: Settings) -> None:
    """The apps' instances, which outlive their runner (a new runner adopts them), and
    one-offs stop with the platform."""
    from slipway.runtime.cgroups import remove_ours
    from slipway.runtime.oneoffs import stop_left_over
    from slipway.runtime.state import stop_all

    count = stop_all(settings.data_dir / "runner" / "state.json", settings.stop_timeout)
    count += stop_left_over(settings.data_dir)
    remove_ours(settings.data_dir)
    if count:
        print(f"  {count} app instance(s) stopped")


def adopt_repositories(settings: Settings, database: Database) -> None:
    """Repositories an earlier version named after their app get the app's uid."""
    from sqlalchemy import select

    from slipway.builder.repositories import adopt_named_repositories
    from slipway.store.models import App

    if settings.repo_host != "local":
        return  # a repo host of its own does this with its own data dir
    with database.session() as session:
        uids = {name: uid for name, uid in session.execute(select(App.name, App.uid))}
    for name in adopt_named_repositories(str(settings.data_dir), uids):
        print(f"  repository of {name} renamed after its uid (made by an earlier version)")


def abandon_builds(database: Database) -> None:
    """Builds an earlier `up` was running when it stopped: no worker runs them any more."""
    from slipway.store.deployments import abort_unfinished

    with database.session() as session:
        count = abort_unfinished(session, "the platform stopped during the build; push again")
    if count:
        print(f"  {count} unfinished deployment(s) of an earlier run marked aborted")


def _banner(settings: Settings, supervisor: Supervisor) -> None:
    from slipway.fleet import announcements

    print(
        f"Slipway is up; data in {settings.data_dir}. Ctrl-C stops everything; "
        f"kill -HUP {os.getpid()} upgrades it in place."
    )
    for service in supervisor.services:
        log = f", log {service.log_path}" if service.log_path else ""
        print(f"  {service.name:<8} {service.listens}  (pid {service.pid}{log})")
    if settings.redis_url is not None:
        print(f"  {'redis':<8} {settings.redis_url}  (external)")
    host = settings.effective_public_host
    print("The gateway's host keys, for ~/.ssh/known_hosts (check them before you trust them):")
    for line in known_hosts_lines(settings.data_dir / "gateway", host, settings.ssh_port):
        print(f"  {line}")
    bin_dir = Path(sys.executable).parent
    print(
        f"Commands: {bin_dir}/slipway and slipwayd; to type just their names:\n"
        f'  export PATH="{bin_dir}:$PATH"'
    )
    print(NEXT_STEPS.format(host=host, http_port=settings.http_port), end="")
    sys.stdout.flush()
    # Then what happens: apps deployed, and where.
    redis_url = settings.redis_url or next(
        s.listens for s in supervisor.services if s.name == "redis"
    )
    announcements.follow(redis_url, lambda message: print(f"  {message}", flush=True))


def _remove_stale_pid_files(data_dir: Path) -> None:
    """PID files of processes that are gone (a server killed outright leaves its own)."""
    for name in PID_FILES:
        path = data_dir / name
        try:
            pid = int(path.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            path.unlink(missing_ok=True)
        except PermissionError:
            pass  # someone else's process: not ours to judge

"""The runner of this host: which instances of which release run, deploys that start the
new before they stop the old, and restarts of crashed instances with back-off."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

from slipway.applog.routerlog import RoutedHosts, RouterLog, router_log_listener
from slipway.applog.ship import LogShipper
from slipway.applog.stream import AppLog
from slipway.config import Settings
from slipway.fleet import processes, registry
from slipway.fleet.announcements import announce
from slipway.host.appuser import AppUser, apps_root, ensure_app_user, traversable_dir
from slipway.router.haproxy import RouterFiles
from slipway.router.table import Router, Target
from slipway.runtime import releases
from slipway.runtime import state as saved
from slipway.runtime.cgroups import SIZES, Cgroups, Group
from slipway.runtime.instances import Instance
from slipway.runtime.oneoff_server import OneOffServer
from slipway.runtime.oneoffs import OneOffs
from slipway.runtime.releases import DeployFailed, Release
from slipway.runtime.resources import Ports, RunnerResources
from slipway.runtime.stats import Sampler
from slipway.wire.deployment_states import CRASHED_ERROR, HOOK_ERROR, TIMEOUT_ERROR

log = logging.getLogger("slipway.runtime")

ONE_OFF_STOP_TIMEOUT = 5.0  # seconds from SIGTERM to SIGKILL for a release command
MAX_QUICK_CRASHES = 10  # then it stays crashed until the next release
SUPERVISE_EVERY = 0.5
SAMPLE_EVERY = 2.0  # seconds between CPU and memory samples


@dataclass
class AppState:
    release: Release
    directory: Path
    instances: list[Instance] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Runner:
    def __init__(self, settings: Settings, connection: redis.Redis) -> None:
        self.settings = settings
        self.redis = connection
        self.boot_timeout = settings.boot_timeout
        self.stop_timeout = settings.stop_timeout
        router_files = RouterFiles(settings.router_dir or settings.data_dir / "router")
        self.router = Router(router_files, settings.router_slots, settings.apps_domain)
        root = apps_root(settings.data_dir, settings.apps_dir)
        self.releases_dir = traversable_dir(root / "releases")
        self.logs_dir = settings.data_dir / "logs"
        self.logs_dir.mkdir(mode=0o700, exist_ok=True)
        self.logs = LogShipper(
            AppLog(connection, settings.log_max_lines, settings.log_max_days),
            settings.log_lines_per_minute,
        )
        self.cgroups = Cgroups.detect(settings.data_dir)
        self.memory_mb = SIZES[settings.instance_size]
        self.apps: dict[str, AppState] = {}
        self._deploy_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self.ports = Ports()
        self._instances: dict[str, Instance] = {}  # every one started and not stopped yet
        self._save_lock = threading.Lock()
        self._stopping = threading.Event()
        directory = settings.data_dir / "runner"
        directory.mkdir(mode=0o700, exist_ok=True)
        self.state_path = directory / "state.json"
        # One runner per data dir: a new one (an upgrade) waits for the old one to exit.
        self._lock = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        # The runner of the router's host takes its request lines, for every runner's apps.
        self.routed = RoutedHosts(connection)
        self.router_log = (
            RouterLog(
                router_log_listener(router_files.log_socket),
                self.logs.applog,
                RoutedHosts(connection).app,
            )
            if settings.router_dir is None
            else None
        )
        self._adopt(saved.load(self.state_path))
        resources = RunnerResources(
            settings,
            connection,
            self.releases_dir,
            self.logs_dir,
            self.logs,
            self.cgroups,
            self.ports,
        )
        self.oneoffs = OneOffs(resources)
        self.oneoff_server = OneOffServer(self.oneoffs, settings.effective_internal_secret())
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()
        self._heartbeat = threading.Thread(target=self._beat, daemon=True)
        self._heartbeat.start()
        self.sampler = Sampler(self.memory_mb if self.cgroups is not None else None)
        self._sampling = threading.Thread(target=self._sample, daemon=True)
        self._sampling.start()

    def _sample(self) -> None:
        """CPU and memory of every instance, every few seconds (slipway stats)."""
        while not self._stopping.wait(SAMPLE_EVERY):
            pids = set()
            for state in list(self.apps.values()):
                samples = []
                for instance in list(state.instances):
                    sample = self.sampler.sample(instance)
                    if sample is not None and instance.process is not None:
                        samples.append(sample)
                        pids.add(instance.process.pid)
                try:
                    processes.report_stats(self.redis, state.release.app_uid, samples)
                except redis.RedisError as error:
                    log.warning("cannot report stats: %s", error)
            self.sampler.forget(pids)

    def _beat(self) -> None:
        """Tell the API this runner is alive (it places apps on live runners only)."""
        while True:
            try:
                registry.heartbeat(
                    self.redis,
                    self.settings.runner_name,
                    self.settings.runner_address,
                    self.oneoff_server.port,
                )
            except redis.RedisError as error:
                log.warning("heartbeat failed: %s", error)
            if self._stopping.wait(registry.EVERY):
                return

    def _adopt(self, found: saved.RunnerState) -> None:
        """Take over the instances the previous runner left running (it was upgraded or
        restarted); stop those of no release it ran (a deploy it did not finish)."""
        strays = []
        for record in found.instances:
            process = record.process()
            release = found.releases.get(record.app_uid)
            if process is None:
                continue
            if release is None or release["version"] != record.version:
                strays.append(record)
                continue
            app = self.apps.get(record.app_uid)
            if app is None:
                app = AppState(
                    Release.from_record(release), Path(found.directories[record.app_uid])
                )
                self.apps[record.app_uid] = app
            instance = Instance(
                app.release.app,
                record.app_uid,
                record.version,
                record.kind,
                record.index,
                record.command,
                record.port,
                process=process,
                state=record.state,
                restarts=record.restarts,
                started_at=record.started_at,
            )
            if record.group is not None and self.cgroups is not None:
                instance.group = Group(Path(record.group), self.cgroups.version, self.memory_mb)
                instance.oom_kills = instance.group.oom_kills()
            self.ports.hold(record.port)
            self._instances[self._key(instance)] = instance
            app.instances.append(instance)
            self._report(instance)
            logs = self.logs_dir / record.app_uid / instance.server
            self.logs.watch(logs, record.app_uid, instance.name, record.version, record.log_offsets)
        for app in self.apps.values():
            names = ", ".join(i.name for i in app.instances)
            log.info("%s v%s adopted: %s", app.release.app, app.release.version, names)
            self.logs.event(app.release.app_uid, f"Runner restarted: {names} adopted")
        if strays:
            saved.stop_all_of(strays, self.stop_timeout)
        self._save()

    @staticmethod
    def _key(instance: Instance) -> str:
        return f"{instance.app_uid}/{instance.server}"

    def _save(self) -> None:
        """What runs, for the next runner (and for `slipwayd up`, to stop it)."""
        with self._save_lock:
            records = []
            for instance in list(self._instances.values()):
                if instance.process is None:
                    continue
                logs = self.logs_dir / instance.app_uid / instance.server
                records.append(
                    saved.InstanceRecord(
                        app_uid=instance.app_uid,
                        version=instance.version,
                        kind=instance.kind,
                        index=instance.index,
                        command=instance.command,
                        port=instance.port,
                        pid=instance.process.pid,
                        started_at=_create_time(instance.process),
                        restarts=instance.restarts,
                        state=instance.state,
                        group=str(instance.group.path) if instance.group else None,
                        log_offsets=self.logs.offsets(logs),
                    )
                )
            apps = list(self.apps.values())
            saved.save(
                self.state_path,
                saved.RunnerState(
                    releases={a.release.app_uid: a.release.record() for a in apps},
                    directories={a.release.app_uid: str(a.directory) for a in apps},
                    instances=records,
                ),
            )

    def url(self, app: str) -> str:
        return f"http://{self.router.host(app)}:{self.settings.router_port}/"

    # -- deploy, scale, restart ----------------------------------------------------------

    def deploy(self, release: Release) -> bool:
        """Start the release's instances; once every web instance takes connections, route
        to them, then stop the previous release's. On failure (DeployFailed) the previous
        one serves on. One change at a time per app; False: a release as new or newer
        runs already."""
        with self._app_lock(release.app_uid):
            current = self.apps.get(release.app_uid)
            if current is not None and current.release.version >= release.version:
                log.info(
                    "%s v%s: v%s runs already",
                    release.app,
                    release.version,
                    current.release.version,
                )
                return False
            self.logs.event(
                release.app_uid, f"Deploying v{release.version}", version=release.version
            )
            try:
                self._deploy(release)
            except BaseException as error:
                serving = f"v{current.release.version} serves on" if current else "nothing runs"
                failed = f"Deploy of v{release.version} failed: {error}; {serving}"
                self.logs.event(release.app_uid, failed, version=release.version)
                announce(self.redis, f"{release.app}: {failed}")
                raise
            names = ", ".join(i.name for i in self.apps[release.app_uid].instances) or "none"
            self.logs.event(
                release.app_uid,
                f"v{release.version} deployed (instances: {names}) at {self.url(release.app)}",
                version=release.version,
            )
            url = self.url(release.app)
            announce(self.redis, f"{release.app} v{release.version} deployed: {url}")
            return True

    def _app_lock(self, app_uid: str) -> threading.Lock:
        with self._locks_lock:
            return self._deploy_locks.setdefault(app_uid, threading.Lock())

    def _deploy(self, release: Release) -> None:
        user = ensure_app_user(release.app_uid)
        directory = releases.unpack(
            self.releases_dir, release.app_uid, release.version, release.slug, user
        )
        started: list[Instance] = []
        previous = self.apps.get(release.app_uid)
        state = AppState(release, directory, started)
        try:
            self._release_phase(release, directory, user)
            for kind, count in release.formation.items():
                if kind in release.process_types:
                    started += [
                        self._start(state, user, kind, index) for index in range(1, count + 1)
                    ]
            self._wait_ready(started)
            if previous is not None:
                previous.lock.acquire()
            try:
                self.apps[release.app_uid] = state
                self._route(state)
            finally:
                if previous is not None:
                    previous.lock.release()
        except BaseException:  # the previous release serves on (or nothing did)
            if previous is not None:
                self.apps[release.app_uid] = previous
                self._route(previous)
            else:
                self.apps.pop(release.app_uid, None)
            self._stop(release.app_uid, started)
            raise
        log.info("%s v%s serves at %s", release.app, release.version, self.url(release.app))
        if previous is None:  # it may have run on another runner before
            with contextlib.suppress(redis.RedisError):
                processes.forget_other_hosts(self.redis, release.app_uid, self.settings.runner_name)
        if previous is not None:
            self._stop(release.app_uid, previous.instances)
            in_use = self.oneoffs.versions_in_use(release.app_uid)
            releases.prune(self.releases_dir, release.app_uid, {release.version, *in_use})

    def scale(self, app_uid: str, formation: dict[str, int]) -> None:
        """Run this many instances of each process type: new ones join the router once
        they listen; extra ones leave it before they stop."""
        with self._app_lock(app_uid):
            state = self.apps.get(app_uid)
            if state is None:
                return  # nothing runs: its next deploy asks the API for the formation
            state.release.formation = dict(formation)
            user = ensure_app_user(app_uid)
            added: list[Instance] = []
            leaving: list[Instance] = []
            for kind, count in formation.items():
                if kind not in state.release.process_types:
                    continue
                mine = sorted((i for i in state.instances if i.kind == kind), key=lambda i: i.index)
                leaving += mine[count:]
                free = sorted(set(range(1, count + 1)) - {i.index for i in mine})
                added += [self._start(state, user, kind, index) for index in free]
            self._replace(state, leaving, added)
            self.logs.event(app_uid, "Scaled to " + _formation_text(formation))

    def restart(self, app_uid: str, scope: list[str]) -> None:
        """Replace instances (all; of some types: ``web``; some: ``web.1``): each new one
        takes traffic before the one it replaces stops."""
        with self._app_lock(app_uid):
            state = self.apps.get(app_uid)
            if state is None:
                return
            old = [i for i in state.instances if not scope or i.kind in scope or i.name in scope]
            user = ensure_app_user(app_uid)
            new = [self._start(state, user, i.kind, i.index) for i in old]
            self._replace(state, old, new)
            self.logs.event(app_uid, "Restarted " + (", ".join(i.name for i in old) or "nothing"))

    def _replace(self, state: AppState, old: list[Instance], new: list[Instance]) -> None:
        try:
            self._wait_ready(new)
        except BaseException:
            self._stop(state.release.app_uid, new)
            raise
        with state.lock:
            state.instances = [i for i in state.instances if i not in old] + new
            self._route(state)
        self._stop(state.release.app_uid, old)

    def _release_phase(self, release: Release, directory: Path, user: AppUser | None) -> None:
        """The Procfile's ``release:`` command (migrations...), then, at the app's first
        deploy, app.json's postdeploy, each in a one-off instance of the new release, before
        any of its instances starts: if one fails, nothing changes."""
        if release.release_command:
            self._release_task(release, directory, user, "release", release.release_command)
        if release.first_deploy_command:
            self._release_task(release, directory, user, "postdeploy", release.first_deploy_command)

    def _release_task(
        self, release: Release, directory: Path, user: AppUser | None, kind: str, command: str
    ) -> None:
        state = AppState(release, directory)
        one_off = self._start(state, user, kind, 1, command)
        assert one_off.process is not None
        try:
            status = one_off.process.wait(self.settings.release_timeout)
        except psutil.TimeoutExpired:
            status = None
        finally:
            self._stop(release.app_uid, [one_off], ONE_OFF_STOP_TIMEOUT)
        if status != 0:
            outcome = "timed out" if status is None else f"exited with status {status}"
            what = "the release command" if kind == "release" else "app.json's postdeploy"
            raise DeployFailed(HOOK_ERROR, f"{what} {outcome}")

    def _start(
        self,
        state: AppState,
        user: AppUser | None,
        kind: str,
        index: int,
        command: str | None = None,
    ) -> Instance:
        release = state.release
        instance = Instance(
            release.app,
            release.app_uid,
            release.version,
            kind,
            index,
            command or release.process_types[kind],
            self.ports.take(),
        )
        logs = self.logs_dir / release.app_uid / instance.server
        self.logs.watch(logs, release.app_uid, instance.name, release.version)
        if self.cgroups is not None:
            name = f"{release.app_uid}-{instance.server}"
            instance.group = self.cgroups.create(name, self.memory_mb)
        self._instances[self._key(instance)] = instance
        self._spawn(state, instance, user)
        return instance

    def _spawn(self, state: AppState, instance: Instance, user: AppUser | None) -> None:
        env = instance.environment(state.release.config, state.release.commit, state.directory)
        logs = self.logs_dir / instance.app_uid / instance.server
        instance.start(state.directory, env, user, logs, instance.group)
        self._report(instance)
        self._save()
        self.logs.event(
            instance.app_uid,
            f"{instance.name} starting: {instance.command}",
            instance.name,
            instance.version,
        )

    def _wait_ready(self, instances: list[Instance]) -> None:
        """Until every web instance takes connections; others are up once started."""
        deadline = time.monotonic() + self.boot_timeout
        waiting = []
        for instance in instances:
            if instance.kind == "web":
                waiting.append(instance)
            else:
                self._up(instance)
        while waiting:
            for instance in list(waiting):
                if instance.listening():
                    self._up(instance)
                    waiting.remove(instance)
                elif not instance.alive:
                    raise DeployFailed(
                        CRASHED_ERROR,
                        f"{instance.name} {instance.exit_description()} before it listened "
                        "on its PORT",
                    )
            if waiting and time.monotonic() > deadline:
                raise DeployFailed(
                    TIMEOUT_ERROR,
                    f"{waiting[0].name} did not listen on its PORT within {self.boot_timeout:g} s",
                )
            time.sleep(0.05)

    def _up(self, instance: Instance) -> None:
        instance.state = "up"
        self._report(instance)
        self.logs.event(instance.app_uid, f"{instance.name} up", instance.name, instance.version)

    def _report(self, instance: Instance, gone: bool = False) -> None:
        """The instance's state, for `slipway ps` (through the API)."""
        found = processes.ProcessState(
            name=instance.name,
            kind=instance.kind,
            index=instance.index,
            state=instance.state,
            release=instance.version,
            host=self.settings.runner_name,
            pid=instance.process.pid if instance.process is not None else None,
            port=instance.port,
            since=instance.started_at,
            restarts=instance.restarts,
            exit=instance.last_exit,
        )
        try:
            if gone:
                processes.gone(self.redis, instance.app_uid, found)
            else:
                processes.report(self.redis, instance.app_uid, found)
        except redis.RedisError as error:
            log.warning("cannot report %s of %s: %s", instance.name, instance.app_uid, error)

    def _route(self, state: AppState) -> None:
        address = self.settings.runner_address
        targets = [
            Target(i.server, address, i.port)
            for i in state.instances
            if i.kind == "web" and i.state == "up"
        ]
        release = state.release
        with contextlib.suppress(redis.RedisError):  # first: the router logs what it routes
            self.routed.set(self.router.host(release.app), release.app_uid, release.version)
        self.router.switch(release.app, targets)

    def _stop(self, app_uid: str, instances: list[Instance], timeout: float | None = None) -> None:
        wait = self.stop_timeout if timeout is None else timeout
        for instance in instances:
            instance.state = "stopping"
            self._report(instance)
        threads = [threading.Thread(target=i.stop, args=(wait,), daemon=True) for i in instances]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for instance in instances:
            self._instances.pop(self._key(instance), None)
            self.ports.release(instance.port)
            if instance.group is not None:
                instance.group.remove()
            self.logs.close(self.logs_dir / app_uid / instance.server)
            self.logs.event(app_uid, f"{instance.name} stopped", instance.name, instance.version)
            self._report(instance, gone=True)
        self._save()

    # -- supervision ---------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.wait(SUPERVISE_EVERY):
            for state in list(self.apps.values()):
                if not state.lock.acquire(blocking=False):
                    continue  # a deploy is switching it
                try:
                    self._restart_crashed(state)
                except Exception:
                    log.exception("supervising %s failed", state.release.app)
                finally:
                    state.lock.release()

    def _restart_crashed(self, state: AppState) -> None:
        now = time.time()
        app_uid = state.release.app_uid
        for instance in state.instances:
            if instance.state == "stopping":
                continue
            if instance.alive:
                if instance.child_oom_killed():  # a gunicorn worker...
                    self.logs.event(
                        app_uid,
                        f"{instance.name}: a process was killed over the memory limit "
                        f"({self.memory_mb} MB)",
                        instance.name,
                        instance.version,
                    )
                continue
            if instance.state != "crashed":
                if now - instance.started_at > 60:
                    instance.restarts = 0  # it ran a while: not a quick crash
                instance.state = "crashed"
                instance.last_exit = instance.exit_description()
                self._report(instance)
                self.logs.event(
                    app_uid,
                    f"{instance.name} crashed: {instance.last_exit}",
                    instance.name,
                    instance.version,
                )
                if instance.restarts >= MAX_QUICK_CRASHES:
                    self.logs.event(
                        app_uid,
                        f"{instance.name} crashed {MAX_QUICK_CRASHES} times in a row: it stays "
                        "down until the next deploy or restart",
                        instance.name,
                        instance.version,
                    )
                if instance.kind == "web":
                    self._route(state)
            if instance.restarts >= MAX_QUICK_CRASHES:
                continue
            backoff = min(2**instance.restarts * 0.5, 60.0)
            if now - instance.started_at < backoff:
                continue
            instance.restarts += 1
            self._spawn(state, instance, ensure_app_user(app_uid))
            if instance.kind == "web":
                threading.Thread(target=self._route_when_up, args=(state, instance)).start()
            else:
                self._up(instance)

    def _route_when_up(self, state: AppState, instance: Instance) -> None:
        deadline = time.monotonic() + self.boot_timeout
        while instance.alive and time.monotonic() < deadline:
            if instance.listening():
                with state.lock:
                    self._up(instance)
                    if self.apps.get(state.release.app_uid) is state:
                        self._route(state)
                return
            time.sleep(0.1)

    def stop_app(self, app_uid: str, app: str) -> None:
        with self._app_lock(app_uid):
            state = self.apps.pop(app_uid, None)
            self.router.unroute(app)
            with contextlib.suppress(redis.RedisError):
                self.routed.forget(self.router.host(app))
            if state is not None:
                with state.lock:
                    self._stop(app_uid, state.instances)
            releases.prune(self.releases_dir, app_uid, set())
            shutil.rmtree(self.logs_dir / app_uid, ignore_errors=True)
            with contextlib.suppress(redis.RedisError):
                processes.forget(self.redis, app_uid)

    def reroute(self, app_uid: str) -> None:
        """Route the app to its instances (adopted ones, once the API says it is placed
        here: a router that restarted meanwhile knows none)."""
        with self._app_lock(app_uid):
            state = self.apps.get(app_uid)
            if state is not None:
                with state.lock:
                    self._route(state)

    def let_go(self, app_uid: str) -> None:
        """Stop an app that now runs elsewhere (its new runner has routed it there)."""
        with self._app_lock(app_uid):
            state = self.apps.pop(app_uid, None)
            if state is not None:
                with state.lock:
                    self._stop(app_uid, state.instances)

    def shutdown(self) -> None:
        """The runner goes, its apps stay: their logs shipped so far and what runs are
        saved for the next runner, which adopts them (``slipwayd up`` stops them when the
        platform stops)."""
        self._stopping.set()
        self._supervisor.join(5)
        if self.router_log is not None:
            self.router_log.stop()
        self.logs.stop()
        with contextlib.suppress(redis.RedisError):
            registry.leave(self.redis, self.settings.runner_name)
        self._save()
        self.oneoff_server.stop_accepting()
        os.close(self._lock)  # the next runner may start: it takes new one-offs
        self.oneoffs.wait_until_none()


def _formation_text(formation: dict[str, int]) -> str:
    return " ".join(f"{kind}={count}" for kind, count in sorted(formation.items()))


def _create_time(process: psutil.Process) -> float:
    try:
        return float(process.create_time())
    except psutil.Error:
        return 0.0

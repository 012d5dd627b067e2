"""The runner of this host: which instances of which release run, deploys that start the
new before they stop the old, and restarts of crashed instances with back-off."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipway.appuser import AppUser, apps_root, ensure_app_user, traversable_dir
from slipway.config import Settings
from slipway.embedded.supervisor import free_port
from slipway.router.haproxy import RouterFiles
from slipway.router.table import Router, Target
from slipway.runtime import releases
from slipway.runtime.instances import Instance

log = logging.getLogger("slipway.runtime")

STOP_TIMEOUT = 30.0  # seconds between SIGTERM and SIGKILL
SHUTDOWN_TIMEOUT = 5.0  # the same when the runner itself stops (its supervisor waits 10 s)
MAX_QUICK_CRASHES = 10  # then it stays crashed until the next release
SUPERVISE_EVERY = 0.5


class DeployFailed(Exception):
    pass


@dataclass
class Release:
    """What a Deploy job runs, as the API describes it."""

    app: str
    app_uid: str
    version: int
    slug: Path
    commit: str
    process_types: dict[str, str]
    config: dict[str, str]
    formation: dict[str, int]
    release_command: str | None = None

    @classmethod
    def from_api(cls, answer: dict[str, Any], slugs: Path) -> Release:
        return cls(
            app=answer["app"],
            app_uid=answer["app_uid"],
            version=int(answer["version"]),
            slug=slugs / answer["app_uid"] / f"{answer['slug_id']}.tar.gz",
            commit=answer["commit"],
            process_types=dict(answer["process_types"]),
            config=dict(answer["config"]),
            formation=dict(answer.get("formation") or {"web": 1}),
            release_command=answer.get("release_command"),
        )


@dataclass
class AppState:
    release: Release
    directory: Path
    instances: list[Instance] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Runner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.boot_timeout = settings.boot_timeout
        self.router = Router(
            RouterFiles(settings.data_dir / "router"), settings.router_slots, settings.apps_domain
        )
        root = apps_root(settings.data_dir, settings.apps_dir)
        self.releases_dir = traversable_dir(root / "releases")
        self.logs_dir = settings.data_dir / "logs"
        self.logs_dir.mkdir(mode=0o700, exist_ok=True)
        self.apps: dict[str, AppState] = {}
        self._deploy_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._ports: set[int] = set()
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()

    # -- deploy --------------------------------------------------------------------------

    def deploy(self, release: Release) -> None:
        """Start the release's instances; once every web instance takes connections, route
        to them, then stop the previous release's. On failure the previous one serves on.
        One deploy at a time per app; a release older than the running one is skipped."""
        with self._deploy_lock(release.app_uid):
            current = self.apps.get(release.app_uid)
            if current is not None and current.release.version >= release.version:
                log.info(
                    "%s v%s: v%s runs already",
                    release.app,
                    release.version,
                    current.release.version,
                )
                return
            self._deploy(release)

    def _deploy_lock(self, app_uid: str) -> threading.Lock:
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
            started += self._start(release, directory, user)
            self._wait_ready([i for i in started if i.kind == "web"])
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
            self._stop(started)
            raise
        log.info(
            "%s v%s serves at http://%s:%s/",
            release.app,
            release.version,
            self.router.host(release.app),
            self.settings.router_port,
        )
        if previous is not None:
            self._stop(previous.instances)
            releases.prune(self.releases_dir, release.app_uid, {release.version})

    def _release_phase(self, release: Release, directory: Path, user: AppUser | None) -> None:
        """The Procfile's ``release:`` command (migrations...), in a one-off instance of the
        new release, before any of its instances starts: if it fails, nothing changes."""
        if not release.release_command:
            return
        one_off = Instance(
            release.app,
            release.app_uid,
            release.version,
            "release",
            1,
            release.release_command,
            self._port(),
        )
        env = one_off.environment(release.config, release.commit, directory)
        one_off.start(directory, env, user, self._log(release.app_uid, one_off))
        assert one_off.process is not None
        try:
            status = one_off.process.wait(self.settings.release_timeout)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            one_off.stop(SHUTDOWN_TIMEOUT)
            self._ports.discard(one_off.port)
        if status != 0:
            outcome = "timed out" if status is None else f"exited with status {status}"
            raise DeployFailed(
                f"{release.app} v{release.version}: the release command {outcome} "
                f"(hook-error; see release.1.log); the previous release serves on"
            )

    def _start(self, release: Release, directory: Path, user: AppUser | None) -> list[Instance]:
        started = []
        for kind, count in release.formation.items():
            command = release.process_types.get(kind)
            if command is None:
                continue
            for index in range(1, count + 1):
                instance = Instance(
                    release.app,
                    release.app_uid,
                    release.version,
                    kind,
                    index,
                    command,
                    self._port(),
                )
                env = instance.environment(release.config, release.commit, directory)
                instance.start(directory, env, user, self._log(release.app_uid, instance))
                started.append(instance)
        return started

    def _wait_ready(self, instances: list[Instance]) -> None:
        deadline = time.monotonic() + self.boot_timeout
        waiting = list(instances)
        while waiting:
            for instance in list(waiting):
                if instance.listening():
                    instance.state = "up"
                    waiting.remove(instance)
                elif not instance.alive:
                    raise DeployFailed(f"{instance.name} exited before it took connections")
            if waiting and time.monotonic() > deadline:
                raise DeployFailed(
                    f"{waiting[0].name} did not listen on its PORT within "
                    f"{self.boot_timeout:g} s (timeout-error)"
                )
            time.sleep(0.05)

    def _route(self, state: AppState) -> None:
        targets = [
            Target(i.server, "127.0.0.1", i.port)
            for i in state.instances
            if i.kind == "web" and i.state == "up"
        ]
        self.router.switch(state.release.app, targets)

    def _stop(self, instances: list[Instance], timeout: float = STOP_TIMEOUT) -> None:
        threads = [threading.Thread(target=i.stop, args=(timeout,), daemon=True) for i in instances]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for instance in instances:
            self._ports.discard(instance.port)

    def _port(self) -> int:
        while True:
            port = free_port()
            if port not in self._ports:
                self._ports.add(port)
                return port

    def _log(self, app_uid: str, instance: Instance) -> Path:
        directory = self.logs_dir / app_uid
        directory.mkdir(mode=0o700, exist_ok=True)
        return directory / f"{instance.name}.log"

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
        for instance in state.instances:
            if instance.alive or instance.state == "stopping":
                continue
            if instance.state != "crashed":
                if now - instance.started_at > 60:
                    instance.restarts = 0  # it ran a while: not a quick crash
                instance.state = "crashed"
                log.warning("%s %s crashed", state.release.app, instance.name)
                if instance.kind == "web":
                    self._route(state)
            if instance.restarts >= MAX_QUICK_CRASHES:
                continue
            backoff = min(2**instance.restarts * 0.5, 60.0)
            if now - instance.started_at < backoff:
                continue
            instance.restarts += 1
            user = ensure_app_user(state.release.app_uid)
            env = instance.environment(state.release.config, state.release.commit, state.directory)
            instance.start(state.directory, env, user, self._log(state.release.app_uid, instance))
            if instance.kind == "web":
                threading.Thread(target=self._route_when_up, args=(state, instance)).start()

    def _route_when_up(self, state: AppState, instance: Instance) -> None:
        deadline = time.monotonic() + self.boot_timeout
        while instance.alive and time.monotonic() < deadline:
            if instance.listening():
                instance.state = "up"
                with state.lock:
                    if self.apps.get(state.release.app_uid) is state:
                        self._route(state)
                return
            time.sleep(0.1)

    def stop_app(self, app_uid: str, app: str) -> None:
        state = self.apps.pop(app_uid, None)
        self.router.unroute(app)
        if state is not None:
            with state.lock:
                self._stop(state.instances)
        releases.prune(self.releases_dir, app_uid, set())
        shutil.rmtree(self.logs_dir / app_uid, ignore_errors=True)

    def shutdown(self) -> None:
        """Stop every instance (the runner is going away with its apps)."""
        self._stopping.set()
        self._stop([i for state in self.apps.values() for i in state.instances], SHUTDOWN_TIMEOUT)

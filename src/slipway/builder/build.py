"""The Build job: a pushed tree (exported by the pre-receive hook) becomes a slug and a release.

It runs on the repo host's worker, next to the repository. Every line of output goes to the
deployment's Redis stream as it comes (the pusher's hook relays it as ``remote:`` lines),
and the build stops with the matching status when it fails, takes too long
(``timeout-error``), makes too big a slug, or is no longer wanted (the pusher went away:
``aborted``). Whatever happens, the build directory goes and the deployment gets its end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from slipway.builder import buildlock
from slipway.builder.buildlog import BUILDER_ALIVE_TTL, BuildLog, builder_alive_key
from slipway.builder.gitshell import SAFE_PATH
from slipway.builder.layout import builds_dir, caches_dir, pythons_dir, slugs_dir
from slipway.builder.manifest import FILE as MANIFEST_FILE
from slipway.builder.manifest import Manifest, ManifestError, parse_manifest
from slipway.builder.platform import PlatformApi, PlatformError
from slipway.builder.prereceive import QUEUE_WAIT_LIMIT
from slipway.builder.procfile import ProcfileError, parse_procfile, split_release_command
from slipway.builder.pythons import PythonHost, PythonUnavailable, parse_request
from slipway.builder.repositories import MB, REPOSITORY_ID, megabytes
from slipway.builder.steps import BuildSteps
from slipway.builder.workspace import BuildFailed, Workspace, read_app_file
from slipway.config import Settings
from slipway.host.appuser import (
    apps_root,
    copy_for_app_users,
    ensure_app_user,
    remove_app_user,
)
from slipway.host.filelock import exclusive
from slipway.jobs.connection import sync_redis
from slipway.wire.deployment_states import ABORTED, BUILD_ERROR, STARTING, SUCCESS

log = logging.getLogger("slipway.builder")

STACK = "slipway-1"
# The host's own network settings, which downloads of dependencies need (a proxy and the
# CA that signs its certificates); nothing else of the worker's environment reaches builds.
NETWORK_SETTINGS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    *("COREPACK_INTEGRITY_KEYS", "COREPACK_NPM_REGISTRY", "npm_config_registry"),
)
MAX_STORED_LOG = 512 * 1024  # bytes of JSON: the API takes bodies up to 1 MB
MAX_REASON = 2000  # characters of a failure's reason
# Where a buildpack's `fail` writes its one-line reason (in the build's TMPDIR).
FAILURE_FILE = "slipway-failure"
# Heroku's order: runtime.txt first, then .python-version.
PYTHON_VERSION_FILES = ("runtime.txt", ".python-version")


@dataclass
class Build:
    settings: Settings
    deployment_id: int
    app_uid: str
    connection: redis.Redis
    api: PlatformApi
    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.output = BuildLog(self.connection, self.deployment_id)
        self._stored = 0
        self._trimmed = False

    def say(self, line: str) -> None:
        self.output.write(line)
        self.lines.append(line)
        self._stored += _json_size(line)
        while self._stored > MAX_STORED_LOG and len(self.lines) > 1:
            self._stored -= _json_size(self.lines.pop(0))
            self._trimmed = True

    def log(self) -> str:
        """What the store keeps: the end of the output, where errors are."""
        head = ["(the start of this log was cut: it was too long)"] if self._trimmed else []
        return "\n".join(head + self.lines)

    def still_wanted(self) -> bool:
        """Is the pusher still there? (Its hook keeps the app's build lock.)"""
        return buildlock.holds(self.connection, self.app_uid, self.deployment_id)

    def _heartbeat(self, done: threading.Event) -> None:
        """Tell the hook this worker is alive (it gives up on a build whose worker died)."""
        key = builder_alive_key(self.deployment_id)
        while True:
            with contextlib.suppress(redis.RedisError):
                self.connection.set(key, "1", ex=BUILDER_ALIVE_TTL)
            if done.wait(2.0):
                break
        with contextlib.suppress(redis.RedisError):
            self.connection.delete(key)

    def run(self) -> None:
        done = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(done,), daemon=True)
        heartbeat.start()
        try:
            self._run()
        finally:
            done.set()
            heartbeat.join()

    def _run(self) -> None:
        workspace = Workspace(
            builds_dir(self.settings) / str(self.deployment_id),
            caches_dir(self.settings) / self.app_uid,
        )
        slug: Path | None = None
        try:
            if not self.still_wanted():
                raise BuildFailed(ABORTED, "the push was cancelled before its build started")
            info = self.api.start_build(self.deployment_id)
            pusher = f", pushed by {info['pusher']}" if info.get("pusher") else ""
            self.say(f"-----> Building {info['app']} ({info['commit'][:7]}{pusher})")
            with exclusive(workspace.cache.parent / f"{self.app_uid}.lock"):
                result, slug = self.compile(workspace, info)
            self.say(f"-----> Build finished in {time.monotonic() - self.started:.1f} s")
            if not self.still_wanted():
                raise BuildFailed(ABORTED, "the push was interrupted: build cancelled")
            answer = self.api.finish(self.deployment_id, SUCCESS, log=self.log(), build=result)
            if answer["status"] != STARTING:  # the pusher gave up just before the end
                self.output.end(answer["status"], "the push was interrupted: build cancelled")
                return
            slug = None  # released: it stays
            self.prune_slugs(answer["keep_slugs"])
            self.output.write(f"-----> Released v{answer['release_version']}")
            url = f"http://{info['app']}.{self.settings.apps_domain}:{self.settings.router_port}/"
            self.output.write(f"       {url} (deployed once it listens on its PORT)")
            self.output.end(SUCCESS)
        except BuildFailed as failure:
            self._fail(failure.status, failure.reason)
        except PlatformError as error:
            self._fail(BUILD_ERROR, str(error))
        except Exception as error:
            log.exception("build of deployment %s failed", self.deployment_id)
            self._fail(BUILD_ERROR, f"internal error of the builder ({type(error).__name__})")
        finally:
            if slug is not None:
                slug.unlink(missing_ok=True)
            shutil.rmtree(workspace.root, ignore_errors=True)

    def _fail(self, status: str, reason: str) -> None:
        reason = reason[:MAX_REASON]
        self.lines.append(f" !     {reason}")  # the hook shows it as "Push rejected: ..."
        with contextlib.suppress(PlatformError):
            self.api.finish(self.deployment_id, status, error=reason, log=self.log())
        self.output.end(status, reason)

    def compile(self, workspace: Workspace, info: dict[str, Any]) -> tuple[dict[str, Any], Path]:
        user = ensure_app_user(self.app_uid)
        workspace.prepare(info["env"], user)
        if os.path.lexists(workspace.app / ".gitmodules"):
            raise BuildFailed(
                BUILD_ERROR, "git submodules are not supported: vendor the code into the app"
            )
        manifest = self.manifest(workspace.app, info)
        steps = BuildSteps(
            workspace,
            user,
            self._environment(workspace, info),
            self.settings,
            deadline=self.started + self.settings.build_timeout,
            still_wanted=self.still_wanted,
            say=self.say,
        )
        name, buildpack = steps.detect()
        self.say(f"-----> {name} app detected")
        if buildpack.name == "python":
            steps.env.update(self.python_for(workspace.app))
        failure = workspace.tmp / FAILURE_FILE
        steps.env["SLIPWAY_FAILURE_FILE"] = str(failure)
        status = steps.stream([str(buildpack / "bin" / "compile"), *steps.dirs()])
        if status != 0:
            # The buildpack's own one-line reason (lib/output.sh's fail), else a general one.
            reason = (read_app_file(failure, 4096) or "").strip().splitlines()
            raise BuildFailed(
                BUILD_ERROR,
                reason[-1] if reason else f"the {name} build failed (see the output above)",
            )
        defaults = steps.release(buildpack)
        types, release_command = self.process_types(workspace.app, defaults)
        if manifest is not None:
            self.describe_manifest(manifest, list(types), info)
        slug, size = self.make_slug(steps)
        return {
            "slug_id": slug.stem.removesuffix(".tar"),
            "slug_size": size,
            "commit": info["commit"],
            "buildpack": name,
            "process_types": types,
            "release_command": release_command,
            "manifest": manifest.for_release() if manifest is not None else None,
            "build_seconds": round(time.monotonic() - self.started, 3),
        }, slug

    def python_for(self, app: Path) -> dict[str, str]:
        """The interpreter the app asks for (see slipway.builder.pythons), for the Python
        buildpack: ``SLIPWAY_PYTHON`` (its path) and ``SLIPWAY_PYTHON_VERSION``."""
        import uv

        host = PythonHost(
            uv.find_uv_bin(),
            pythons_dir(self.settings),
            downloads=self.settings.python_downloads == "automatic",
            exact_pin=self.settings.python_exact_pin,
        )
        try:
            request = None
            for source in PYTHON_VERSION_FILES:
                text = read_app_file(app / source)
                if text is not None and (request := parse_request(text, source)):
                    break
            interpreter = host.choose(request, self.say)
        except PythonUnavailable as error:
            raise BuildFailed(BUILD_ERROR, str(error)) from None
        return {
            "SLIPWAY_PYTHON": str(interpreter.path),
            "SLIPWAY_PYTHON_VERSION": interpreter.dotted,
        }

    def _environment(self, workspace: Workspace, info: dict[str, Any]) -> dict[str, str]:
        """A clean environment: config vars are in ENV_DIR, never exported here."""
        import uv

        tools = apps_root(self.settings.data_dir, self.settings.apps_dir)
        network = {name: os.environ[name] for name in NETWORK_SETTINGS if os.environ.get(name)}
        return {
            **network,
            "PATH": SAFE_PATH,
            "HOME": str(workspace.home),
            "TMPDIR": str(workspace.tmp),
            "LANG": "C.UTF-8",
            "STACK": STACK,
            "SOURCE_VERSION": info["commit"],
            "SLIPWAY_UV": str(copy_for_app_users(Path(uv.find_uv_bin()), tools)),
        }

    def process_types(
        self, app: Path, defaults: dict[str, str]
    ) -> tuple[dict[str, str], str | None]:
        self.say("-----> Discovering process types")
        try:
            declared = parse_procfile(read_app_file(app / "Procfile") or "")
            types, release_command = split_release_command(declared)
        except ProcfileError as error:
            raise BuildFailed(BUILD_ERROR, str(error)) from None
        for name, command in defaults.items():
            types.setdefault(name, command)
        if "web" not in types:
            raise BuildFailed(
                BUILD_ERROR,
                "no web process type: add a Procfile with a line such as "
                "`web: gunicorn app:app` (the command that serves HTTP on $PORT)",
            )
        origin = "Procfile declares" if declared else "Default"
        self.say(f"       {origin} types -> {', '.join(types)}")
        if release_command:
            self.say(f"       Release command: {release_command}")
        return types, release_command

    def manifest(self, app: Path, info: dict[str, Any]) -> Manifest | None:
        """The app's app.json, checked (see slipway.builder.manifest); before the first
        deploy, its required config vars must be set."""
        text = read_app_file(app / MANIFEST_FILE)
        if text is None:
            return None
        try:
            manifest = parse_manifest(text)
            if info.get("first_release"):
                manifest.check_required(info["env"])
        except ManifestError as error:
            raise BuildFailed(BUILD_ERROR, str(error)) from None
        return manifest

    def describe_manifest(self, manifest: Manifest, types: list[str], info: dict[str, Any]) -> None:
        """Say what app.json brings (never a value); its formation must name process types
        the release has."""
        try:
            manifest.check_process_types(types)
        except ManifestError as error:
            raise BuildFailed(BUILD_ERROR, str(error)) from None
        if not manifest.applies:
            return
        if not info.get("first_release"):
            self.say(f"-----> {MANIFEST_FILE}: not applied (only the first deploy applies it)")
            return
        self.say(f"-----> {MANIFEST_FILE}: {manifest.summary(info['env'])}")
        if manifest.sizes:
            self.say("       formation sizes are ignored: instances have the platform's size")
        if manifest.first_deploy:
            self.say(f"       Postdeploy command, once: {manifest.first_deploy}")

    def make_slug(self, steps: BuildSteps) -> tuple[Path, int]:
        """The built tree as a gzipped tarball, in the app's slugs directory."""
        self.say("-----> Compressing the slug")
        began = time.monotonic()
        directory = slugs_dir(self.settings, self.app_uid)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        slug = directory / f"{uuid.uuid4().hex}.tar.gz"
        limit = self.settings.slug_max_mb * MB
        try:
            size = steps.pack(slug, limit)
        except BaseException:
            slug.unlink(missing_ok=True)
            raise
        if size > limit:
            slug.unlink(missing_ok=True)
            raise BuildFailed(
                BUILD_ERROR,
                f"the slug is over the {megabytes(limit)} limit (SLIPWAY_SLUG_MAX_MB): "
                "leave build artefacts and caches out of the app",
            )
        self.say(f"       {human_size(size)}, done in {time.monotonic() - began:.1f} s")
        return slug, size

    def prune_slugs(self, keep: list[str]) -> None:
        """Slugs of releases older than the newest ``keep_releases`` go."""
        for slug in slugs_dir(self.settings, self.app_uid).glob("*.tar.gz"):
            if slug.name.removesuffix(".tar.gz") not in keep:
                slug.unlink(missing_ok=True)


def _json_size(line: str) -> int:
    """Bytes the line takes in the JSON body that carries the log to the API."""
    return len(json.dumps(line)) + 2


def human_size(size: int) -> str:
    return f"{size / 1024:.0f} KB" if size < MB else megabytes(size)


def forget_app(app_uid: str) -> None:
    """What builds left of a destroyed app: its slugs, its cache, its user."""
    settings = Settings()
    shutil.rmtree(slugs_dir(settings, app_uid), ignore_errors=True)
    caches = caches_dir(settings)
    shutil.rmtree(caches / app_uid, ignore_errors=True)
    (caches / f"{app_uid}.lock").unlink(missing_ok=True)
    remove_app_user(app_uid)


def sweep_stale_builds(settings: Settings) -> None:
    """Build directories whose hook and worker both died (a machine crash): gone after
    twice the longest a build may wait and run."""
    oldest = time.time() - 2 * (settings.build_timeout + QUEUE_WAIT_LIMIT)
    for directory in builds_dir(settings).iterdir():
        with contextlib.suppress(OSError):
            if directory.stat().st_mtime < oldest:
                shutil.rmtree(directory, ignore_errors=True)


def run_build(deployment_id: int, repository: str) -> None:
    """The job's body, with this host's settings (the worker's SLIPWAY_* variables)."""
    if not REPOSITORY_ID.fullmatch(repository):
        raise ValueError(f"not a repository id: {repository!r}")
    settings = Settings()
    if settings.redis_url is None:
        raise RuntimeError("SLIPWAY_REDIS_URL is not set for the build worker")
    sweep_stale_builds(settings)
    connection = sync_redis(settings.redis_url)
    api = PlatformApi.from_settings(settings)
    try:
        Build(settings, int(deployment_id), repository, connection, api).run()
    finally:
        connection.close()

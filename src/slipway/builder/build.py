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
import signal
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis
import yaml

from slipway.builder import buildlock
from slipway.builder.buildlog import BUILDER_ALIVE_TTL, BuildLog, builder_alive_key
from slipway.builder.buildpacks import BUILDPACKS_DIR, ORDER
from slipway.builder.gitshell import SAFE_PATH
from slipway.builder.layout import builds_dir, caches_dir, pythons_dir, slugs_dir
from slipway.builder.manifest import FILE as MANIFEST_FILE
from slipway.builder.manifest import Manifest, ManifestError, parse_manifest
from slipway.builder.platform import PlatformApi, PlatformError
from slipway.builder.prereceive import QUEUE_WAIT_LIMIT
from slipway.builder.procfile import ProcfileError, parse_procfile, split_release_command
from slipway.builder.pythons import PythonHost, PythonUnavailable, parse_request
from slipway.builder.repositories import MB, REPOSITORY_ID, megabytes
from slipway.config import Settings
from slipway.host.appuser import (
    AppUser,
    apps_root,
    copy_for_app_users,
    ensure_app_user,
    give_to,
    remove_app_user,
    run_as,
    traversable_dir,
)
from slipway.host.filelock import exclusive
from slipway.jobs.connection import sync_redis
from slipway.wire.deployment_states import ABORTED, BUILD_ERROR, STARTING, SUCCESS, TIMEOUT_ERROR

log = logging.getLogger("slipway.builder")

STACK = "slipway-1"
DETECT_TIMEOUT = 30.0
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


class BuildFailed(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Workspace:
    """One build's directories: the tree (``app``), config vars (``env``), a home and a
    temporary directory; the app's cache lives on between builds."""

    root: Path
    cache: Path

    @property
    def app(self) -> Path:
        return self.root / "app"

    @property
    def env(self) -> Path:
        return self.root / "env"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def prepare(self, config: dict[str, str], user: AppUser | None) -> None:
        if not self.app.is_dir():
            raise BuildFailed(ABORTED, "the pushed tree is gone (the push was cancelled)")
        traversable_dir(self.root)
        for directory in (self.env, self.home, self.tmp, self.cache):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, value in config.items():
            path = self.env / name  # names are checked by the store: [A-Z_][A-Z0-9_]*
            path.write_text(value)
            path.chmod(0o600)
        for directory in (self.app, self.env, self.home, self.tmp):
            give_to(directory, user)
        if user is not None and os.stat(self.cache).st_uid != user.uid:
            give_to(self.cache, user)


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
        runner = Runner(workspace, user, self._environment(workspace, info), self)
        name, buildpack = runner.detect()
        self.say(f"-----> {name} app detected")
        if buildpack.name == "python":
            runner.env.update(self.python_for(workspace.app))
        failure = workspace.tmp / FAILURE_FILE
        runner.env["SLIPWAY_FAILURE_FILE"] = str(failure)
        status = runner.stream([str(buildpack / "bin" / "compile"), *runner.dirs()])
        if status != 0:
            # The buildpack's own one-line reason (lib/output.sh's fail), else a general one.
            reason = (read_app_file(failure, 4096) or "").strip().splitlines()
            raise BuildFailed(
                BUILD_ERROR,
                reason[-1] if reason else f"the {name} build failed (see the output above)",
            )
        defaults = runner.release(buildpack)
        types, release_command = self.process_types(workspace.app, defaults)
        if manifest is not None:
            self.describe_manifest(manifest, list(types), info)
        slug, size = self.make_slug(runner)
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

    def make_slug(self, runner: Runner) -> tuple[Path, int]:
        """The built tree as a gzipped tarball, in the app's slugs directory."""
        self.say("-----> Compressing the slug")
        began = time.monotonic()
        directory = slugs_dir(self.settings, self.app_uid)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        slug = directory / f"{uuid.uuid4().hex}.tar.gz"
        limit = self.settings.slug_max_mb * MB
        try:
            size = runner.pack(slug, limit)
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


def read_app_file(path: Path, limit: int = 64 * 1024) -> str | None:
    """A file of the app's tree, read safely by a privileged worker: never through a
    symbolic link (it could point at the host's secrets), only a regular file, bounded."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        raise BuildFailed(BUILD_ERROR, f"{path.name} must be a regular file") from None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise BuildFailed(BUILD_ERROR, f"{path.name} must be a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise BuildFailed(BUILD_ERROR, f"{path.name} is over {limit // 1024} KB")
    return data.decode(errors="replace")


@dataclass
class Runner:
    """Runs buildpack scripts as the app's user, in a session of their own (so that the
    whole group can be stopped), with the build's deadline."""

    workspace: Workspace
    user: AppUser | None
    env: dict[str, str]
    build: Build

    def dirs(self) -> list[str]:
        return [str(self.workspace.app), str(self.workspace.cache), str(self.workspace.env)]

    def _popen(self, argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            cwd=self.workspace.app,
            env=self.env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            umask=0o077,
            **run_as(self.user),
            **options,
        )

    def quick(self, script: Path) -> tuple[int, str, str] | None:
        """A buildpack's quick step (``detect``, ``release``) on the tree: status, output and
        errors, or None when it hangs (stopped after DETECT_TIMEOUT seconds)."""
        process = self._popen(
            [str(script), str(self.workspace.app)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            out, err = process.communicate(timeout=DETECT_TIMEOUT)
        except subprocess.TimeoutExpired:
            _stop_group(process)
            return None
        return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def detect(self) -> tuple[str, Path]:
        settings = self.build.settings
        buildpacks = copy_for_app_users(
            BUILDPACKS_DIR, apps_root(settings.data_dir, settings.apps_dir)
        )
        for name in ORDER:
            detected = self.quick(buildpacks / name / "bin" / "detect")
            if detected is not None and detected[0] == 0:
                return detected[1].strip() or name, buildpacks / name
        raise BuildFailed(
            BUILD_ERROR,
            "no buildpack matches this app: Slipway builds Python (requirements.txt, Pipfile or "
            "pyproject.toml), Node.js (package.json), static sites (index.html or "
            "static.json) and apps with a Procfile of host commands",
        )

    def release(self, buildpack: Path) -> dict[str, str]:
        """The buildpack's default process types."""
        released = self.quick(buildpack / "bin" / "release")
        if released is None:
            raise BuildFailed(BUILD_ERROR, "the buildpack's release step hung")
        status, out, err = released
        if status != 0:
            raise BuildFailed(BUILD_ERROR, f"the buildpack's release step failed: {err[:500]}")
        try:
            described = yaml.safe_load(out) or {}
            defaults = described.get("default_process_types") or {}
            return {str(k): str(v) for k, v in dict(defaults).items()}
        except (yaml.YAMLError, AttributeError, TypeError, ValueError):
            raise BuildFailed(BUILD_ERROR, "the buildpack's release step printed no YAML") from None

    def supervise(self, argv: list[str], consume: Callable[[IO[bytes]], None], stderr: Any) -> int:
        """Run ``argv`` while ``consume`` reads its output; its exit status. Stops it at the
        build's deadline, or when the build is no longer wanted; whatever it leaves running
        in its process group is stopped when it ends."""
        process = self._popen(argv, stdout=subprocess.PIPE, stderr=stderr)
        assert process.stdout is not None
        reader = threading.Thread(target=consume, args=(process.stdout,), daemon=True)
        reader.start()
        deadline = self.build.started + self.build.settings.build_timeout
        try:
            while True:
                try:
                    return process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() > deadline:
                    limit = self.build.settings.build_timeout
                    words = f"{limit // 60} minutes" if limit % 60 == 0 else f"{limit} seconds"
                    raise BuildFailed(
                        TIMEOUT_ERROR,
                        f"the build took longer than its limit of {words} (SLIPWAY_BUILD_TIMEOUT)",
                    )
                if not self.build.still_wanted():
                    raise BuildFailed(ABORTED, "the push was interrupted: build cancelled")
        finally:
            _stop_group(process)
            reader.join(timeout=10)

    def stream(self, argv: list[str]) -> int:
        """Run ``argv``, each line of its output said as it comes; its exit status."""

        def relay(output: IO[bytes]) -> None:
            for raw in output:
                self.build.say(raw.decode(errors="replace").rstrip("\r\n"))

        return self.supervise(argv, relay, subprocess.STDOUT)

    def pack(self, slug: Path, limit: int) -> int:
        """The tree as a gzipped tarball in ``slug``, packed by the app's user (root never
        reads the tree), written by us up to ``limit`` bytes; its size (over ``limit`` when
        cut short)."""
        written = 0

        def copy(output: IO[bytes]) -> None:
            nonlocal written
            with open(os.open(slug, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
                while chunk := output.read(1 << 20):
                    written += len(chunk)
                    if written > limit:
                        output.close()  # tar stops on a broken pipe
                        return
                    file.write(chunk)

        with tempfile.TemporaryFile() as errors:
            argv = ["tar", "--create", "--gzip", "--file", "-", "."]
            status = self.supervise(argv, copy, errors)
            if written <= limit and status != 0:
                errors.seek(0)
                detail = errors.read(2000).decode(errors="replace").strip()
                raise BuildFailed(BUILD_ERROR, f"could not pack the slug: {detail}")
        return written


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """TERM the build's process group, then KILL what is left after a few seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


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

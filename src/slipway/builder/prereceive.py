"""The pre-receive hook: a push of the app's deploy branch is built before git accepts it.

git runs this with the pushed objects still in quarantine, before any ref moves, and shows
its output to the pusher as ``remote:`` lines. So the hook exports the pushed tree itself
(``git archive``: a worker elsewhere could not see quarantined objects), hands it to the
repo host's worker as a Build job, relays the build's output as it comes, and exits with
the build's status: a failed build rejects the push, and the branch keeps its old commit.

While it waits it holds the app's build lock (one build per app) and writes a keep-alive line
during silent steps, which also tells it, by a failed write, that the pusher has gone: it
then lets go of the lock, and the worker cancels the build.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import redis

from slipway.builder import buildlock
from slipway.builder.buildlog import BuildLog, builder_alive_key
from slipway.builder.layout import builds_dir
from slipway.builder.platform import PlatformApi, PlatformError
from slipway.builder.repositories import BUILD, REPOSITORY_ID, repo_queue
from slipway.config import Settings
from slipway.jobs.client import Client
from slipway.jobs.connection import sync_redis
from slipway.wire.deployment_states import ABORTED, SUCCESS

QUEUE_WAIT_LIMIT = 600  # seconds a pushed build may wait for a free worker
ZERO_COMMIT = "0" * 40  # a deleted ref's new commit
KEEPALIVE = 10.0  # seconds without output before a keep-alive line
REFRESH = 5.0  # seconds between refreshes of the build lock
MAX_TREE_FACTOR = 4  # the exported tree may be this many times the slug limit


class Rejected(Exception):
    """The push is refused; the message says why (``Push rejected: MESSAGE``)."""


class Hook:
    def __init__(self, settings: Settings, repository: str, out: TextIO) -> None:
        self.settings = settings
        self.repository = repository
        self.out = out
        self.git = os.getppid()  # receive-pack: if it goes, so has the pusher

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def run(self, updates: list[dict[str, str]], pusher: str | None) -> int:
        api = PlatformApi.from_settings(self.settings)
        try:
            answer = self._open(api, updates, pusher)
            deployment_id = answer.get("deployment_id")
            if deployment_id is None:
                return 0
            return self._deploy(api, int(deployment_id), answer, updates)
        except Rejected as rejection:
            self.say(f" !     Push rejected: {rejection}")
            return 1

    def _open(
        self, api: PlatformApi, updates: list[dict[str, str]], pusher: str | None
    ) -> dict[str, Any]:
        try:
            answer = api.open_deployment(self.repository, updates, pusher)
        except PlatformError as error:
            raise Rejected(f"the platform cannot start a build: {error}") from None
        branch = answer.get("deploy_branch")
        for ref in answer.get("skipped", []):
            deleted = any(u["ref"] == ref and u["new"] == ZERO_COMMIT for u in updates)
            what = "deleted" if deleted else "stored"
            if branch:
                self.say(f"slipway: {ref} {what}, not deployed: only {branch} deploys.")
            else:
                self.say(f"slipway: {ref} {what}, not deployed: push main (or master) to deploy.")
        return answer

    def _deploy(
        self,
        api: PlatformApi,
        deployment_id: int,
        answer: dict[str, Any],
        updates: list[dict[str, str]],
    ) -> int:
        workspace = builds_dir(self.settings) / str(deployment_id)
        connection: Any = None
        keeper: LockKeeper | None = None
        try:
            connection = sync_redis(self.settings.redis_url or "")
            holder = buildlock.acquire(connection, self.repository, deployment_id)
            if holder is not None:
                raise Rejected(
                    f"another deployment of {answer['app']} (#{holder}) is building; push again "
                    f"once it has finished (slipway deployment-logs {holder} -f follows it)"
                )
            keeper = LockKeeper(connection, self.repository, deployment_id)
            commit = next(u["new"] for u in updates if u["ref"] == answer["ref"])
            self._export(commit, workspace / "app")
            Client(connection=connection).enqueue(
                repo_queue(self.settings.repo_host),
                BUILD,
                [deployment_id, self.repository],
                retry=False,
            )
            return self._relay(connection, deployment_id, keeper)
        except Rejected as rejection:
            _give_up(api, deployment_id, str(rejection))
            raise
        except (BrokenPipeError, KeyboardInterrupt, SystemExit):
            _give_up(api, deployment_id, "the push was interrupted")
            raise
        except Exception as error:  # Redis down, a full disk...: the deployment still ends
            reason = f"the build could not run ({type(error).__name__}: {error})"[:500]
            _give_up(api, deployment_id, reason)
            raise Rejected(reason) from error
        finally:
            if keeper is not None:
                keeper.stop()
            shutil.rmtree(workspace, ignore_errors=True)
            if connection is not None:
                connection.close()

    def _export(self, commit: str, target: Path) -> None:
        """``git archive COMMIT | tar -x``, bounded: the objects are in quarantine, where only
        this process and its children (they inherit git's variables) can read them."""
        target.mkdir(mode=0o700, parents=True)
        limit = self.settings.slug_max_mb * MAX_TREE_FACTOR * 1024 * 1024
        with tempfile.TemporaryFile() as errors:  # a pipe could fill and block tar
            archive = subprocess.Popen(
                ["git", "archive", "--format=tar", commit], stdout=subprocess.PIPE
            )
            unpack = subprocess.Popen(
                [
                    *("tar", "--extract", "--no-same-owner", "--warning=no-timestamp"),
                    *("--directory", str(target)),
                ],
                stdin=subprocess.PIPE,
                stderr=errors,
            )
            assert archive.stdout is not None
            assert unpack.stdin is not None
            size = 0
            too_big = False
            with contextlib.suppress(BrokenPipeError):  # tar failed: its words say why
                while chunk := archive.stdout.read(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        too_big = True
                        break
                    unpack.stdin.write(chunk)
                unpack.stdin.close()
            archive.kill()
            archived, unpacked = archive.wait(), unpack.wait()
            if too_big:
                raise Rejected(f"the pushed tree is over {limit // (1024 * 1024)} MB unpacked")
            if archived != 0 or unpacked != 0:
                errors.seek(0)
                detail = errors.read(2000).decode(errors="replace").strip()
                raise Rejected(f"could not export the pushed tree {detail}".strip())

    def _relay(self, connection: Any, deployment_id: int, keeper: LockKeeper) -> int:
        """The build's output, as it comes; keep-alives while it is silent; its status."""
        output = BuildLog(connection, deployment_id)
        began = last_output = time.monotonic()
        started = False
        for entry in output.follow(poll=1.0):
            now = time.monotonic()
            if keeper.lost:
                raise Rejected("the app's build lock was lost (Redis restarted?); push again")
            if entry is not None:
                started = True
                if entry.line is not None:
                    self.say(entry.line)
                    last_output = now
                if entry.end is not None:
                    if entry.end == SUCCESS:
                        return 0
                    raise Rejected(entry.reason or entry.end)
                continue
            if os.getppid() != self.git:
                raise BrokenPipeError("git receive-pack has gone")
            alive = bool(connection.exists(builder_alive_key(deployment_id)))
            if started and not alive:
                raise Rejected("the builder stopped during the build; push again")
            started = started or alive
            if not started and now - began > QUEUE_WAIT_LIMIT:
                raise Rejected(
                    f"no builder took the build within {QUEUE_WAIT_LIMIT / 60:g} minutes "
                    "(is the platform's worker running?)"
                )
            if now - last_output >= KEEPALIVE:
                state = "building" if started else "waiting for a builder"
                self.say(f"       ... {state} ({now - began:.0f} s)")
                last_output = now
        raise Rejected("the build's output ended without a status")


class LockKeeper:
    """Keeps the app's build lock alive from a thread of its own (an export or a quiet
    build may take longer than the lock's expiry), and lets go of it at the end."""

    def __init__(self, connection: Any, app_uid: str, deployment_id: int) -> None:
        self.connection, self.app_uid, self.deployment_id = connection, app_uid, deployment_id
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._keep, daemon=True)
        self._thread.start()

    def _keep(self) -> None:
        while not self._done.wait(REFRESH):
            try:
                held = buildlock.refresh(self.connection, self.app_uid, self.deployment_id)
            except redis.RedisError:
                continue  # a blip: the lock outlives a few missed refreshes
            if not held:
                self.lost = True
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        with contextlib.suppress(redis.RedisError):
            buildlock.release(self.connection, self.app_uid, self.deployment_id)


def _give_up(api: PlatformApi, deployment_id: int, reason: str) -> None:
    """Record the end of a deployment that will not build (or will not be awaited)."""
    with contextlib.suppress(PlatformError):  # it stays queued; the pusher saw the reason
        api.finish(deployment_id, ABORTED, error=reason)


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def parse_updates(lines: list[str]) -> list[dict[str, str]]:
    updates = []
    for line in lines:
        words = line.split()
        if len(words) == 3:
            updates.append({"old": words[0], "new": words[1], "ref": words[2]})
    return updates


def main(stdin: TextIO, out: TextIO) -> int:
    repository = os.path.basename(os.getcwd()).removesuffix(".git")  # git runs us in GIT_DIR
    settings = Settings()
    if not (settings.redis_url and os.environ.get("SLIPWAY_API_URL")) or not (
        REPOSITORY_ID.fullmatch(repository)
    ):
        out.write("slipway: this repository host has no builder: stored without a build\n")
        return 0
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _stop)
    updates = parse_updates(stdin.read().splitlines())
    try:
        return Hook(settings, repository, out).run(updates, os.environ.get("SLIPWAY_PUSHER"))
    except BrokenPipeError:
        return 1  # the pusher has gone; nobody to tell


def run() -> int:
    return main(sys.stdin, sys.stdout)

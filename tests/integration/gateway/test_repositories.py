"""Repositories on the repo host: named by the app's uid, deleted when the app is destroyed
(by the repo host's worker, as a job), bounded in size and in what git may spend on a push,
and kept packed by housekeeping after each push."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

import slipway.builder.housekeeping as housekeeping
from slipway.builder.repositories import MB, RepoHost, repo_queue
from slipway.store.models import App
from tests.control_support import ApiServer, empty_database, serve_api
from tests.gateway_support import RunningGateway, User, add_user, serve_gateway
from tests.services import RedisServer, wait_until

QUEUE = repo_queue("local")
SLIPWAYD = [sys.executable, "-m", "slipway.daemon"]


@dataclass
class Platform:
    api: ApiServer
    gateway: RunningGateway
    redis_url: str

    def create_app(self, user: User, name: str) -> str:
        response = self.api.client(user.token).post("/v1/apps", json={"name": name})
        response.raise_for_status()
        with self.api.database.session() as session:
            return str(session.scalar(select(App.uid).where(App.name == name)))

    def destroy_app(self, user: User, name: str) -> None:
        self.api.client(user.token).delete(f"/v1/apps/{name}").raise_for_status()

    def queued(self) -> list[dict[str, object]]:
        client = redis.Redis.from_url(self.redis_url)
        return [json.loads(job) for job in client.lrange(f"queue:{QUEUE}", 0, -1)]


@pytest.fixture(scope="module")
def platform_module(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    tmp = tmp_path_factory.mktemp("repositories")
    data = tmp / "gateway"
    host = RepoHost(
        str(data), quota=8 * MB, max_push=4 * MB, git_memory=128 * MB, redis_url=redis_server.url
    )
    with (
        serve_api(
            f"sqlite:///{tmp / 'slipway.db'}", tmp / "api", redis_url=redis_server.url
        ) as api,
        serve_gateway(api, data, local_repositories=host) as gateway,
    ):
        yield Platform(api, gateway, redis_server.url)


@pytest.fixture
def platform(platform_module: Platform, redis_url: str) -> Platform:
    """An empty store, an empty Redis, no repositories."""
    empty_database(platform_module.api.database)
    subprocess.run(["rm", "-rf", str(platform_module.gateway.repos)], check=True)
    platform_module.gateway.gateway.control._keys.clear()
    return platform_module


@pytest.fixture
def worker(platform: Platform, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The repo host's worker: `slipwayd worker` on the platform's own jobs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env.update(SLIPWAY_DATA_DIR=str(platform.gateway.data_dir), REDIS_URL=platform.redis_url)
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [
            *SLIPWAYD,
            "worker",
            "-r",
            "slipway.builder.jobs",
            "-q",
            QUEUE,
            "--poll-interval",
            "0.2",
            "-t",
            "5",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.send_signal(signal.SIGTERM)
    process.wait(15)
    log.close()


def push(gateway: RunningGateway, user: User, source: Path, *refs: str) -> str:
    """Push (main by default) to shop; returns what git printed, failing on an error."""
    pushed = gateway.git(user.key, "push", gateway.url("shop.git"), *(refs or ["main"]), cwd=source)
    assert pushed.returncode == 0, pushed.stderr
    return pushed.stderr


def commit(repo: Path, files: dict[str, bytes], message: str) -> None:
    repo.mkdir(exist_ok=True)
    if not (repo / ".git").exists():
        subprocess.run(["git", "init", "-q", "--initial-branch=main"], cwd=repo, check=True)
    for name, content in files.items():
        (repo / name).write_bytes(content)
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message],
        cwd=repo,
        check=True,
    )


def test_a_destroyed_apps_code_never_reaches_the_next_owner_of_its_name(
    platform: Platform, worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    gateway = platform.gateway
    alice, mallory = add_user(platform.api, "alice"), add_user(platform.api, "mallory")
    first = platform.create_app(alice, "shop")
    commit(tmp_path / "alice", {".env": b"SECRET=hunter2\n"}, "config")
    assert (
        gateway.git(
            alice.key, "push", gateway.url("shop.git"), "main", cwd=tmp_path / "alice"
        ).returncode
        == 0
    )
    platform.destroy_app(alice, "shop")
    second = platform.create_app(mallory, "shop")
    assert second != first
    cloned = gateway.git(mallory.key, "clone", gateway.url("shop.git"), str(tmp_path / "loot"))
    assert cloned.returncode != 0 and "shop has no code yet" in cloned.stderr
    # The repo host's worker deletes the old repository.
    wait_until(lambda: not gateway.repository(first).exists(), 20, "the old repository deleted")
    commit(tmp_path / "mallory", {"app.py": b"print(1)\n"}, "mine")
    assert (
        gateway.git(
            mallory.key, "push", gateway.url("shop.git"), "main", cwd=tmp_path / "mallory"
        ).returncode
        == 0
    )
    cloned = gateway.git(mallory.key, "clone", gateway.url("shop.git"), str(tmp_path / "copy"))
    assert cloned.returncode == 0, cloned.stderr
    history = subprocess.run(
        ["git", "log", "--all", "--format=%s"],
        cwd=tmp_path / "copy",
        capture_output=True,
        text=True,
    )
    assert history.stdout.split() == ["mine"]
    assert not (tmp_path / "copy" / ".env").exists()


def test_refs_planted_before_a_destroy_never_reach_the_next_owner(
    platform: Platform, tmp_path: Path
) -> None:
    gateway = platform.gateway
    mallory, alice = add_user(platform.api, "mallory"), add_user(platform.api, "alice")
    platform.create_app(mallory, "shop")
    commit(tmp_path / "mallory", {"x": b"planted\n"}, "planted")
    planted = gateway.git(
        mallory.key,
        "push",
        gateway.url("shop.git"),
        "main",
        "main:refs/heads/release",
        "main:refs/tags/v1",
        cwd=tmp_path / "mallory",
    )
    assert planted.returncode == 0, planted.stderr
    platform.destroy_app(mallory, "shop")  # no worker here: the old repository stays on disk
    platform.create_app(alice, "shop")
    commit(tmp_path / "alice", {"app.py": b"ok\n"}, "alice")
    assert (
        gateway.git(
            alice.key, "push", gateway.url("shop.git"), "main", cwd=tmp_path / "alice"
        ).returncode
        == 0
    )
    refs = gateway.git(alice.key, "ls-remote", gateway.url("shop.git")).stdout
    assert "refs/heads/main" in refs
    assert "release" not in refs and "v1" not in refs


def test_destroy_asks_the_repo_host_with_a_retried_job(platform: Platform) -> None:
    alice = add_user(platform.api, "alice")
    uid = platform.create_app(alice, "shop")
    platform.destroy_app(alice, "shop")
    # (A previous test's push may still add its housekeeping: post-receive enqueues it from
    # a detached child.)
    [job] = [job for job in platform.queued() if job["class"] == "slipway.delete_repository"]
    assert job["args"] == [uid]
    assert job["retry"] == 10


def test_the_delete_job_finishes_what_a_failed_attempt_started(tmp_path: Path) -> None:
    repository = tmp_path / "repos" / f"{'a' * 32}.git"
    (repository / "objects").mkdir(parents=True)
    housekeeping.delete(str(repository))
    assert not repository.exists()
    # An attempt that renamed it and then failed: the next one removes what is left.
    leftover = tmp_path / "repos" / f".deleted-{'b' * 32}.git"
    (leftover / "objects").mkdir(parents=True)
    housekeeping.delete(str(tmp_path / "repos" / f"{'b' * 32}.git"))
    assert not leftover.exists()
    housekeeping.delete(str(repository))  # and one that is gone already is fine


def test_a_push_over_the_size_limit_is_refused_and_stores_nothing(
    platform: Platform, tmp_path: Path
) -> None:
    gateway = platform.gateway
    alice = add_user(platform.api, "alice")
    platform.create_app(alice, "shop")
    commit(tmp_path / "src", {"big": os.urandom(5 * MB)}, "too big")
    pushed = gateway.git(alice.key, "push", gateway.url("shop.git"), "main", cwd=tmp_path / "src")
    assert pushed.returncode != 0
    assert "pack exceeds maximum allowed size" in pushed.stderr
    assert gateway.git(alice.key, "ls-remote", gateway.url("shop.git")).stdout == ""


def test_a_push_may_fill_the_quota_and_no_more(platform: Platform, tmp_path: Path) -> None:
    gateway = platform.gateway
    alice = add_user(platform.api, "alice")
    uid = platform.create_app(alice, "shop")
    source = tmp_path / "src"
    for number in range(2):  # 3 MB each, under the 4 MB push limit; the quota is 8 MB
        commit(source, {f"part{number}": os.urandom(3 * MB)}, f"part {number}")
        pushed = gateway.git(alice.key, "push", gateway.url("shop.git"), "main", cwd=source)
        assert pushed.returncode == 0, pushed.stderr
    commit(source, {"part2": os.urandom(3 * MB)}, "more than the room left")
    refused = gateway.git(alice.key, "push", gateway.url("shop.git"), "main", cwd=source)
    assert refused.returncode != 0
    told = r"shop's repository uses 6\.\d MB of its 8\.0 MB quota: this push may add [12]\.\d MB"
    assert re.search(told, refused.stderr), refused.stderr
    assert "pack exceeds maximum allowed size" in refused.stderr
    # Full (as if by an earlier version's pushes): refused before git even starts.
    (gateway.repository(uid) / "objects" / "pack" / "filler").write_bytes(os.urandom(3 * MB))
    refused = gateway.git(alice.key, "push", gateway.url("shop.git"), "main", cwd=source)
    assert re.search(
        r"shop's repository uses 9\.\d MB of its 8\.0 MB quota: push refused", refused.stderr
    )
    clone = gateway.git(alice.key, "clone", "-q", gateway.url("shop.git"), str(tmp_path / "copy"))
    assert clone.returncode == 0 and (tmp_path / "copy" / "part1").exists()  # nothing lost


def test_an_inflation_bomb_stays_within_gits_memory_limit(
    platform: Platform, tmp_path: Path
) -> None:
    """400 MB of zeros push as a 400 KB pack; git inflating it whole would need 400 MB of
    heap, over this host's 128 MB limit. Streamed, it takes a few MB and goes through."""
    gateway = platform.gateway
    alice = add_user(platform.api, "alice")
    platform.create_app(alice, "shop")
    source = tmp_path / "src"
    source.mkdir()
    with (source / "zeros").open("wb") as file:
        file.truncate(400 * MB)
    commit(source, {}, "zeros")
    pushed = gateway.git(alice.key, "push", gateway.url("shop.git"), "main", cwd=source)
    assert pushed.returncode == 0, pushed.stderr
    cloned = gateway.git(
        alice.key, "clone", "-q", "--no-checkout", gateway.url("shop.git"), str(tmp_path / "copy")
    )
    assert cloned.returncode == 0, cloned.stderr


def test_gitmodules_path_tricks_are_refused(platform: Platform, tmp_path: Path) -> None:
    gateway = platform.gateway
    alice = add_user(platform.api, "alice")
    platform.create_app(alice, "shop")
    source = tmp_path / "src"
    commit(source, {"README": b"x\n"}, "start")
    modules = b'[submodule "../../../hooks"]\n\tpath = x\n\turl = https://example.com/x.git\n'
    (source / ".gitmodules").write_bytes(modules)
    subprocess.run(["git", "add", ".gitmodules"], cwd=source, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "evil"],
        cwd=source,
        check=True,
    )
    pushed = gateway.git(alice.key, "push", gateway.url("shop.git"), "main", cwd=source)
    assert pushed.returncode != 0
    assert "gitmodulesName" in pushed.stderr or "disallowed submodule name" in pushed.stderr


def test_housekeeping_packs_every_push_and_removes_aborted_ones(
    platform: Platform, worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    gateway = platform.gateway
    alice = add_user(platform.api, "alice")
    uid = platform.create_app(alice, "shop")
    repository = gateway.repository(uid)
    source = tmp_path / "src"
    for number in range(4):
        commit(
            source,
            {f"f{i}": os.urandom(20_000) for i in range(number * 10, number * 10 + 10)},
            f"c{number}",
        )
        pushed = gateway.git(alice.key, "push", gateway.url("shop.git"), "main", cwd=source)
        assert pushed.returncode == 0, pushed.stderr
        assert not list((repository / "objects").glob("??/*")), "kept as a pack, not loose"
    stale = repository / "objects" / "tmp_objdir-incoming-old"
    (stale / "pack").mkdir(parents=True)
    (stale / "pack" / "tmp_pack_x").write_bytes(b"half a push")
    hour_ago = time.time() - 7200
    for path in (stale / "pack" / "tmp_pack_x", stale / "pack", stale):
        os.utime(path, (hour_ago, hour_ago))
    live = repository / "objects" / "tmp_objdir-incoming-live"
    live.mkdir()
    commit(source, {"last": b"x"}, "last")
    assert (
        gateway.git(alice.key, "push", gateway.url("shop.git"), "main", cwd=source).returncode == 0
    )

    def housekept() -> bool:
        packs = repository / "objects" / "pack"
        return not stale.exists() and any(packs.glob("multi-pack-index-*.bitmap"))

    wait_until(housekept, 30, "the worker's housekeeping")
    assert live.exists()  # a push still landing keeps its objects
    fsck = subprocess.run(
        ["git", "fsck", "--strict"], cwd=repository, capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stderr

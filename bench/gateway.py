"""The SSH gateway against OpenSSH's sshd, on the same machine, in one run.

- Clone of a ~80 MB repository: through the gateway (local upstream), through OpenSSH `sshd`
  (git-upload-pack run by sshd), through the gateway to a repo host behind sshd (two hops),
  and `file://` (no transport at all).
- The same code freshly pushed through the gateway to a new app, once the repo host's worker
  has done its housekeeping: cloned through the gateway, against `file://` of the repacked
  copy and OpenSSH serving the pushed repository itself.
- Ten `git ls-remote` in a row, authentication included, gateway against sshd.
- 500 idle sessions held at once: the gateway's memory per idle session, and per active clone.

    .venv/bin/python bench/gateway.py [--megabytes 80] [--runs 3] [--sessions 500] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncssh
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import RedisServer, Sshd, stop_process, wait_until  # noqa: E402

from bench.cpu import CpuByCommand  # noqa: E402
from slipway.builder.repositories import repo_queue  # noqa: E402
from slipway.host.ports import free_port, port_open  # noqa: E402
from slipway.store import accounts, apps  # noqa: E402
from slipway.store.db import Database  # noqa: E402
from slipway.store.migrate import migrate  # noqa: E402

SLIPWAYD = Path(sys.executable).parent / "slipwayd"


def make_repository(path: Path, megabytes: int) -> Path:
    """A bare repository whose pack is about ``megabytes`` (random, so it does not shrink),
    made from the work tree ``path.parent / "work"``, which stays for pushing."""
    work = path.parent / "work"
    subprocess.run(["git", "init", "-q", "--initial-branch=main", str(work)], check=True)
    per_commit = max(1, megabytes // 4)
    for commit in range(4):
        for index in range(per_commit):
            (work / f"blob-{commit}-{index}.bin").write_bytes(os.urandom(1024 * 1024))
        subprocess.run(["git", "-C", str(work), "add", "."], check=True)
        subprocess.run(
            [
                "git",
                "-C",
                str(work),
                "-c",
                "user.name=b",
                "-c",
                "user.email=b@b",
                "commit",
                "-qm",
                f"commit {commit}",
            ],
            check=True,
        )
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "repack", "-adq"], check=True)
    return path


def timed(run: Callable[[], object], runs: int) -> float:
    """The median of ``runs`` timings, in seconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def git(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        ["git", *args], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def clone(env: dict[str, str], url: str, target: Path) -> Callable[[], None]:
    def run() -> None:
        shutil.rmtree(target, ignore_errors=True)
        git(env, "clone", "-q", "--bare", "--no-local", url, str(target))

    return run


def ssh_command(key: Path, known_hosts: Path) -> str:
    return (
        f"ssh -F /dev/null -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known_hosts}"
    )


class Platform:
    """`slipwayd api`, `slipwayd gateway` and the repo host's `slipwayd worker` as processes,
    with one user, key and the apps big (copied in place) and fresh (to push to)."""

    def __init__(
        self,
        root: Path,
        redis_url: str,
        repo_host: str | None = None,
        upstream: Sshd | None = None,
        upstream_data: Path | None = None,
    ) -> None:
        self.data = root / "data"
        self.http_port, self.ssh_port = free_port(), free_port()
        env = {
            **os.environ,
            "SLIPWAY_DATA_DIR": str(self.data),
            "SLIPWAY_HTTP_PORT": str(self.http_port),
            "SLIPWAY_SSH_PORT": str(self.ssh_port),
            "SLIPWAY_REPO_HOST": repo_host or "local",
            "SLIPWAY_REDIS_URL": redis_url,
        }
        database = Database(f"sqlite:///{self.data / 'slipway.db'}")
        migrate(database.engine)
        self.key = root / "key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True
        )
        with database.session() as session:
            user = accounts.create_user(session, "bench")
            accounts.add_key(session, user, Path(f"{self.key}.pub").read_text(), "key")
            self.uid = apps.create_app(session, user, "big").uid
            self.fresh_uid = apps.create_app(session, user, "fresh").uid
        database.dispose()
        self.api = subprocess.Popen(
            [str(SLIPWAYD), "api"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(lambda: _healthy(f"http://127.0.0.1:{self.http_port}"), 30, "API", self.api)
        argv = [
            str(SLIPWAYD),
            "gateway",
            "--rate",
            "10000",
            "--burst",
            "10000",
            "--max-startups",
            "10000:30:20000",
            "--per-source-max-startups",
            "10000",
            "--max-connections-per-user",
            "10000",  # the idle sessions below are all one user's
        ]
        if upstream is not None:
            argv += [
                "--upstream-key",
                str(upstream.client_key),
                "--upstream-known-hosts",
                str(upstream.known_hosts),
                "--upstream-command",
                f"{sys.executable} -I -m slipway.builder.gitshell --data-dir {upstream_data}",
            ]
        self.gateway = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(lambda: port_open("127.0.0.1", self.ssh_port), 30, "gateway", self.gateway)
        host_key = (self.data / "gateway" / "ssh_host_ed25519_key.pub").read_text().split()
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.ssh_port} {host_key[0]} {host_key[1]}\n")
        self.env = {**os.environ, "GIT_SSH_COMMAND": ssh_command(self.key, self.known_hosts)}
        self.url = f"ssh://git@127.0.0.1:{self.ssh_port}/big.git"
        self.fresh_url = f"ssh://git@127.0.0.1:{self.ssh_port}/fresh.git"
        queue = repo_queue(repo_host or "local")
        self.worker = subprocess.Popen(
            [str(SLIPWAYD), "worker", "-r", "slipway.builder.jobs", "-q", queue],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def repository(self, uid: str) -> Path:
        return self.data / "repos" / f"{uid}.git"

    def stop(self) -> None:
        stop_process(self.worker)
        stop_process(self.gateway)
        stop_process(self.api)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def hold_sessions(
    port: int, key: Path, known_hosts: Path, count: int
) -> list[asyncssh.SSHClientConnection]:
    """``count`` connections, each with an upload-pack waiting for the client's wants."""

    async def one() -> asyncssh.SSHClientConnection:
        conn = await asyncssh.connect(
            "127.0.0.1",
            port,
            username="git",
            client_keys=[str(key)],
            known_hosts=str(known_hosts),
            agent_path=None,
            config=None,
        )
        process = await conn.create_process("git-upload-pack big.git", encoding=None)
        await process.stdout.readuntil(b"0000")  # the refs are advertised: now idle
        return conn

    connections = []
    for start in range(0, count, 50):
        connections += await asyncio.gather(*(one() for _ in range(min(50, count - start))))
    return connections


def push_and_housekeep(platform: Platform, work: Path) -> Path:
    """Push ``work`` to the app fresh through the gateway, to a branch that does not deploy
    (it has nothing to build); wait for the worker's repack."""
    started = time.perf_counter()
    git(platform.env, "-C", str(work), "push", "-q", platform.fresh_url, "main:stored")
    pushed = time.perf_counter() - started
    repository = platform.repository(platform.fresh_uid)
    packs = repository / "objects" / "pack"
    wait_until(lambda: any(packs.glob("multi-pack-index-*.bitmap")), 120, "housekeeping")
    print(
        f"\n(pushed {work.name} to a new app in {pushed:.2f} s; housekept "
        f"{time.perf_counter() - started - pushed:.2f} s later)"
    )
    return repository


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=80)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="CPU by command of one clone each")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="slipway-bench-gateway-"))
    repo = make_repository(root / "source" / "big.git", options.megabytes)
    pack_mb = sum(f.stat().st_size for f in (repo / "objects" / "pack").iterdir()) / 2**20
    target = root / "clone.git"

    with Sshd() as sshd, RedisServer() as redis_server:
        openssh_env = {
            **os.environ,
            "GIT_SSH_COMMAND": ssh_command(sshd.client_key, sshd.known_hosts),
        }
        openssh_url = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{repo}"

        local = Platform(root / "local", redis_server.url)
        (local.data / "repos").mkdir(parents=True, exist_ok=True)
        shutil.copytree(repo, local.repository(local.uid))
        remote_data = root / "repo-host"
        two_hops = Platform(
            root / "two-hops",
            redis_server.url.removesuffix("/0") + "/1",  # a Redis database of its own
            f"{sshd.user}@127.0.0.1:{sshd.port}",
            sshd,
            remote_data,
        )
        (remote_data / "repos").mkdir(parents=True)
        shutil.copytree(repo, remote_data / "repos" / f"{two_hops.uid}.git")
        try:
            print(
                f"{pack_mb:.0f} MB pack; median of {options.runs} clones; {os.cpu_count()} "
                "CPUs; OpenSSH sshd and the gateway on the same machine"
            )
            clone(openssh_env, openssh_url, target)()  # warm the page cache for everyone
            file_time = timed(clone(os.environ.copy(), f"file://{repo}", target), options.runs)
            openssh = timed(clone(openssh_env, openssh_url, target), options.runs)
            gateway = timed(clone(local.env, local.url, target), options.runs)
            hops = timed(clone(two_hops.env, two_hops.url, target), options.runs)
            print("\n== Clone")
            print(f"  file:// (no transport)         {file_time:6.2f} s")
            print(f"  OpenSSH sshd                   {openssh:6.2f} s")
            print(
                f"  gateway, local upstream        {gateway:6.2f} s   {gateway / openssh:.2f}x "
                f"OpenSSH, {gateway / file_time:.2f}x file://"
            )
            print(f"  gateway, SSH upstream (2 hops) {hops:6.2f} s   {hops / openssh:.2f}x OpenSSH")

            fresh = push_and_housekeep(local, root / "source" / "work")
            fresh_openssh_url = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{fresh}"
            clone(openssh_env, fresh_openssh_url, target)()  # its pages in the cache too
            fresh_gateway = timed(clone(local.env, local.fresh_url, target), options.runs)
            fresh_openssh = timed(clone(openssh_env, fresh_openssh_url, target), options.runs)
            print("\n== Clone of a freshly pushed app (after housekeeping)")
            print(
                f"  gateway                        {fresh_gateway:6.2f} s   "
                f"{fresh_gateway / file_time:.2f}x file:// of the repacked copy (goal <= 1.3), "
                f"{fresh_gateway / fresh_openssh:.2f}x OpenSSH serving it (goal <= 0.95)"
            )
            print(f"  OpenSSH sshd, same repository  {fresh_openssh:6.2f} s")
            if options.profile:
                print("  CPU by command, one clone each (the machine's floor for the goal):")
                for label, run in (
                    ("file://", clone(os.environ.copy(), f"file://{repo}", target)),
                    ("gateway", clone(local.env, local.fresh_url, target)),
                    ("OpenSSH", clone(openssh_env, fresh_openssh_url, target)),
                ):
                    with CpuByCommand() as cpu:
                        run()
                    print(f"  {label}\n{cpu.report()}")

            def ls_remote(env: dict[str, str], url: str) -> Callable[[], None]:
                def ten() -> None:
                    for _ in range(10):
                        git(env, "ls-remote", url)

                return ten

            ls_openssh = timed(ls_remote(openssh_env, openssh_url), options.runs)
            ls_gateway = timed(ls_remote(local.env, local.url), options.runs)
            print("\n== Ten git ls-remote in a row (authentication included)")
            print(f"  OpenSSH sshd  {ls_openssh:6.2f} s ({ls_openssh * 100:.0f} ms each)")
            print(
                f"  gateway       {ls_gateway:6.2f} s ({ls_gateway * 100:.0f} ms each)   "
                f"{ls_gateway / ls_openssh:.2f}x OpenSSH"
            )

            before = rss_mb(local.gateway.pid)
            loop = asyncio.new_event_loop()
            held = loop.run_until_complete(
                hold_sessions(local.ssh_port, local.key, local.known_hosts, options.sessions)
            )
            time.sleep(1)
            during = rss_mb(local.gateway.pid)
            children = psutil.Process(local.gateway.pid).children(recursive=True)
            child_mb = sum(child.memory_info().rss for child in children) / 2**20
            print(f"\n== {len(held)} idle sessions held at once")
            print(
                f"  gateway RSS {before:.1f} MB -> {during:.1f} MB: "
                f"{(during - before) * 1024 / len(held):.0f} KB per idle session "
                f"(+ {child_mb / len(held):.1f} MB of git per session, {len(children)} "
                "processes)"
            )
            for conn in held:
                conn.close()
            loop.run_until_complete(asyncio.sleep(1))
            loop.close()
            idle = rss_mb(local.gateway.pid)
            peak = idle
            cloning = subprocess.Popen(
                [
                    "git",
                    "clone",
                    "-q",
                    "--bare",
                    "--no-local",
                    local.url,
                    str(root / "measured.git"),
                ],
                env=local.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while cloning.poll() is None:
                peak = max(peak, rss_mb(local.gateway.pid))
                time.sleep(0.02)
            print(
                f"  one active clone: gateway RSS {idle:.1f} MB -> peak {peak:.1f} MB "
                f"(+{peak - idle:.1f} MB; packs are streamed, not held)"
            )
        finally:
            local.stop()
            two_hops.stop()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""git push, clone and fetch through the gateway with the real OpenSSH client and git."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.control_support import ApiServer, empty_database, serve_api
from tests.gateway_support import RunningGateway, add_app, add_user, serve_gateway
from tests.services import Sshd


def head(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def traced_ls_remote_v2(
    gateway: RunningGateway, key: Path, app: str
) -> subprocess.CompletedProcess[str]:
    """``git ls-remote`` in protocol v2, with the packets traced on stderr."""
    return gateway.git(
        key,
        "-c",
        "protocol.version=2",
        "ls-remote",
        gateway.url(f"{app}.git"),
        env={"GIT_TRACE_PACKET": "1"},
    )


def push_and_clone(
    gateway: RunningGateway, key: Path, source: Path, app: str, target: Path
) -> None:
    pushed = gateway.git(key, "push", gateway.url(f"{app}.git"), "main", cwd=source)
    assert pushed.returncode == 0, pushed.stderr
    cloned = gateway.git(key, "clone", "-q", gateway.url(f"{app}.git"), str(target))
    assert cloned.returncode == 0, cloned.stderr
    assert head(target) == head(source)
    assert (target / "README").read_text() == "hello\n"


def test_push_then_clone_through_the_local_upstream(
    gateway: RunningGateway, api: ApiServer, source: Path, tmp_path: Path
) -> None:
    alice = add_user(api, "alice")
    uid = add_app(api, "alice", "shop")
    push_and_clone(gateway, alice.key, source, "shop", tmp_path / "clone")
    assert (gateway.repository(uid) / "HEAD").read_text() == "ref: refs/heads/main\n"
    # The spellings of the repository a client may use all lead to the same repository.
    for path in ("shop", "/shop.git", "/shop"):
        listed = gateway.git(alice.key, "ls-remote", gateway.url(path).replace("//shop", "/shop"))
        assert listed.returncode == 0, listed.stderr
        assert head(source) in listed.stdout


def test_protocol_v2_reaches_git(gateway: RunningGateway, api: ApiServer, source: Path) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    assert (
        gateway.git(alice.key, "push", gateway.url("shop.git"), "main", cwd=source).returncode == 0
    )
    traced = traced_ls_remote_v2(gateway, alice.key, "shop")
    assert traced.returncode == 0, traced.stderr
    assert "< version 2" in traced.stderr  # the server spoke protocol v2
    fetched = gateway.git(
        alice.key,
        "-c",
        "protocol.version=2",
        "fetch",
        "-q",
        gateway.url("shop.git"),
        "main",
        cwd=source,
    )
    assert fetched.returncode == 0, fetched.stderr


def test_a_collaborator_may_push_and_a_stranger_may_not(
    gateway: RunningGateway, api: ApiServer, source: Path
) -> None:
    alice, bob, carol = (add_user(api, name) for name in ("alice", "bob", "carol"))
    uid = add_app(api, "alice", "shop", "bob")
    pushed = gateway.git(bob.key, "push", gateway.url("shop.git"), "main", cwd=source)
    assert pushed.returncode == 0, pushed.stderr
    for verb in (["push", gateway.url("shop.git"), "main"], ["ls-remote", gateway.url("shop.git")]):
        denied = gateway.git(carol.key, *verb, cwd=source)
        assert denied.returncode != 0
        assert "slipway: shop.git does not exist, or you have no access to it" in denied.stderr
    # A missing app gets exactly the same words: names do not leak.
    missing = gateway.git(carol.key, "push", gateway.url("nothing-here.git"), "main", cwd=source)
    assert "slipway: nothing-here.git does not exist, or you have no access to it" in missing.stderr
    assert sorted(path.name for path in gateway.repos.iterdir()) == [f"{uid}.git"]
    assert alice.name != bob.name


def test_fetching_an_app_never_pushed_says_so(
    gateway: RunningGateway, api: ApiServer, tmp_path: Path
) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "empty")
    cloned = gateway.git(alice.key, "clone", gateway.url("empty.git"), str(tmp_path / "x"))
    assert cloned.returncode != 0
    assert "slipway: empty has no code yet: git push to it first" in cloned.stderr
    assert not gateway.repos.exists() or not any(gateway.repos.iterdir())


def test_concurrent_pushes_to_different_apps(
    gateway: RunningGateway, api: ApiServer, source: Path, tmp_path: Path
) -> None:
    alice = add_user(api, "alice")
    names = [f"app-{i}" for i in range(6)]
    uids = {name: add_app(api, "alice", name) for name in names}

    def push(name: str) -> subprocess.CompletedProcess[str]:
        return gateway.git(alice.key, "push", gateway.url(f"{name}.git"), "main", cwd=source)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(push, names))
    assert [r.returncode for r in results] == [0] * 6, [r.stderr for r in results]
    for name in names:
        assert head(gateway.repository(uids[name])) == head(source)


@pytest.fixture(scope="module")
def sshd_repo_host(
    sshd: Sshd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, RunningGateway, Path]]:
    """An API that places repositories on a repo host (a real sshd), and a gateway in front."""
    tmp = tmp_path_factory.mktemp("ssh-upstream")
    repo_host_data = tmp / "repo-host"
    with (
        serve_api(
            f"sqlite:///{tmp / 'slipway.db'}",
            tmp / "api-data",
            repo_host=f"{sshd.user}@127.0.0.1:{sshd.port}",
        ) as api,
        serve_gateway(
            api,
            tmp / "gateway",
            upstream_key=sshd.client_key,
            upstream_known_hosts=sshd.known_hosts,
            upstream_command=f"{sys.executable} -I -m slipway.builder.gitshell "
            f"--data-dir {repo_host_data}",
        ) as gateway,
    ):
        yield api, gateway, repo_host_data


def test_push_then_clone_through_an_ssh_upstream(
    sshd_repo_host: tuple[ApiServer, RunningGateway, Path], source: Path, tmp_path: Path
) -> None:
    api, gateway, repo_host_data = sshd_repo_host
    empty_database(api.database)
    alice = add_user(api, "alice")
    uid = add_app(api, "alice", "shop")
    push_and_clone(gateway, alice.key, source, "shop", tmp_path / "clone")
    assert head(repo_host_data / "repos" / f"{uid}.git") == head(source)
    assert not (gateway.data_dir / "repos").exists()  # nothing on the gateway itself
    traced = traced_ls_remote_v2(gateway, alice.key, "shop")
    assert "< version 2" in traced.stderr  # GIT_PROTOCOL crossed both hops
    # Sessions share pooled connections to the repo host: one handshake for all of them.
    for _ in range(3):
        assert gateway.git(alice.key, "ls-remote", gateway.url("shop.git")).returncode == 0
    assert len(gateway.gateway._remote[api.settings.repo_host]._pool) == 1

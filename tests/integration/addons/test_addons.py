"""Add-ons through the real CLI and `slipwayd up`: a PostgreSQL database and a Redis of the
app's own, their URLs in its config (a new release), and nothing left once removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import redis

from slipway.embedded.postgres import bindir
from tests.builds_support import SLIPWAY, Platform, web_app
from tests.integration.runtime.test_run import read_until
from tests.services import wait_until

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(tmp_path_factory.mktemp("addons"))
    platform.start()
    platform.run(SLIPWAY, "apps", "create", "blog2")  # no release: add-ons wait for one
    for name in ("shop", "blog"):
        app = platform.new_app(name, None, web_app(name))
        assert platform.push(app).returncode == 0
        platform.answers(name, f"{name} pid=")
    yield platform
    platform.stop()


def cli(platform: Platform, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SLIPWAY, *argv], env=platform.env, capture_output=True, text=True, timeout=120
    )


def add(platform: Platform, app: str, kind: str, *args: str) -> dict[str, Any]:
    added = cli(platform, "addons", "add", kind, "-a", app, "--json", *args)
    assert added.returncode == 0, added.stderr
    found: dict[str, Any] = json.loads(added.stdout)
    return found


def env_of(platform: Platform, app: str) -> dict[str, str]:
    found: dict[str, str] = platform.get(f"/v1/apps/{app}/env")["env"]
    return found


def test_two_first_addons_at_once_share_one_new_cluster(platform: Platform) -> None:
    """The first add-on makes the private cluster: two at once must not make two."""
    with ThreadPoolExecutor(2) as pool:
        added = list(pool.map(lambda app: add(platform, app, "postgresql"), ["blog", "blog2"]))
    for addon, app in zip(added, ["blog", "blog2"], strict=True):
        psycopg.connect(env_of(platform, app)["DATABASE_URL"]).close()
        removed = cli(platform, "addons", "remove", addon["id"], "-a", app, "--yes")
        assert removed.returncode == 0, removed.stderr


def test_a_postgresql_addon_is_a_database_of_the_apps_own(platform: Platform) -> None:
    before = platform.releases("shop")[0]["version"]
    added = add(platform, "shop", "postgresql")
    assert added["id"].startswith("ad-") and added["plan"] == "dev"
    assert added["variables"] == ["DATABASE_URL", "POSTGRESQL_URL"]
    assert added["release_version"] == before + 1
    env = env_of(platform, "shop")
    url = env["DATABASE_URL"]
    assert url.startswith("postgresql://") and env["POSTGRESQL_URL"] == url
    with psycopg.connect(url) as connection:
        connection.execute("CREATE TABLE orders (id int)")
        connection.execute("INSERT INTO orders VALUES (1)")
    # A second database for the same app gets a variable of its own.
    second = add(platform, "shop", "postgresql", "--plan", "standard")
    assert second["variables"] == [f"POSTGRESQL_{second['id'].replace('-', '_').upper()}_URL"]
    # Another app's role may not connect to shop's database, nor guess its password.
    blog = add(platform, "blog", "postgresql")
    blog_url = env_of(platform, "blog")["DATABASE_URL"]
    shop_db = url.rsplit("/", 1)[1]
    with pytest.raises(psycopg.OperationalError, match=r"permission denied|not permitted"):
        psycopg.connect(blog_url.rsplit("/", 1)[0] + "/" + shop_db).close()
    wrong = url.replace(url.split(":")[2].split("@")[0], "wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong).close()
    listed = json.loads(cli(platform, "addons", "-a", "shop", "--json").stdout)
    assert [a["id"] for a in listed] == [added["id"], second["id"]]
    table = cli(platform, "addons", "list", "-a", "shop")
    assert added["id"] in table.stdout and "DATABASE_URL" in table.stdout
    for addon in (second, blog):
        app = "shop" if addon is second else "blog"
        removed = cli(platform, "addons", "remove", addon["id"], "-a", app, "--yes")
        assert removed.returncode == 0, removed.stderr


def test_a_redis_addon_is_a_server_with_a_password(platform: Platform) -> None:
    added = add(platform, "blog", "redis", "--plan", "dev")
    url = env_of(platform, "blog")["REDIS_URL"]
    client = redis.Redis.from_url(url)
    assert client.ping() and client.config_get("maxmemory")["maxmemory"] == str(64 * 2**20)
    client.set("visits", 1)
    without_password = redis.Redis(
        host="127.0.0.1", port=client.connection_pool.connection_kwargs["port"]
    )
    with pytest.raises(redis.AuthenticationError):
        without_password.get("visits")
    with pytest.raises(redis.ResponseError, match="protected"):
        client.config_set("dir", "/tmp")
    removed = cli(platform, "addons", "remove", added["id"], "-a", "blog", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert "REDIS_URL" not in env_of(platform, "blog")
    with pytest.raises(redis.ConnectionError):
        client.ping()


def test_an_addon_server_that_dies_is_started_again_with_its_data(platform: Platform) -> None:
    """`up` checks every few seconds: a Redis killed outright and a PostgreSQL that
    crashed (an immediate stop) serve again, with what they had, and `up` says so."""
    added = add(platform, "blog", "redis")
    client = redis.Redis.from_url(env_of(platform, "blog")["REDIS_URL"])
    client.set("kept", "through the crash")
    client.bgrewriteaof()  # on disk for sure, not within appendfsync's second
    wait_until(
        lambda: (
            client.info("persistence")["aof_rewrite_in_progress"] == 0
            and client.info("persistence")["aof_rewrite_scheduled"] == 0
        ),
        10,
        "the AOF rewrite",
    )
    port = client.connection_pool.connection_kwargs["port"]
    [directory] = [
        conf.parent
        for conf in platform.apps_dir.glob("addons/redis/*/redis.conf")
        if f"port {port}\n" in conf.read_text()
    ]
    os.kill(int((directory / "redis.pid").read_text()), signal.SIGKILL)
    assert platform.up.stdout is not None
    said = read_until(platform.up.stdout.fileno(), b"was down: started again", 20)
    assert f"the Redis add-on {directory.name}".encode() in said
    assert redis.Redis.from_url(env_of(platform, "blog")["REDIS_URL"]).get("kept") == (
        b"through the crash"
    )
    assert cli(platform, "addons", "remove", added["id"], "-a", "blog", "--yes").returncode == 0

    shop = env_of(platform, "shop")["DATABASE_URL"]  # its orders table, from a test above
    cluster = platform.apps_dir / "addons" / "postgresql"
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    pg_ctl = str(bindir() / "pg_ctl")
    crashed = subprocess.run(
        [*as_postgres, pg_ctl, "-D", str(cluster / "data"), "-m", "immediate", "stop"],
        capture_output=True,
        text=True,
    )
    assert crashed.returncode == 0, crashed.stderr
    read_until(platform.up.stdout.fileno(), b"PostgreSQL was down: started again", 30)
    with psycopg.connect(shop) as connection:
        assert connection.execute("SELECT id FROM orders").fetchall() == [(1,)]


def test_removing_an_addon_unsets_its_variables_and_drops_its_data(platform: Platform) -> None:
    added = add(platform, "blog", "postgresql")
    url = env_of(platform, "blog")["DATABASE_URL"]
    psycopg.connect(url).close()
    refused = cli(platform, "addons", "remove", added["id"], "-a", "blog")  # no TTY, no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert "DATABASE_URL" in env_of(platform, "blog")
    before = platform.releases("blog")[0]["version"]
    assert cli(platform, "addons", "remove", added["id"], "-a", "blog", "--yes").returncode == 0
    assert "DATABASE_URL" not in env_of(platform, "blog")
    assert platform.releases("blog")[0]["version"] == before + 1
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url).close()


def test_bad_addon_requests_are_refused_and_change_nothing(platform: Platform) -> None:
    env = env_of(platform, "blog")
    for argv, message in [
        (("addons", "add", "mysql", "-a", "blog"), "unknown add-on 'mysql'"),
        (("addons", "add", "postgresql", "--plan", "huge", "-a", "blog"), "no plan 'huge'"),
        (("addons", "remove", "12", "-a", "blog", "--yes"), "ids look like ad-12"),
        (("addons", "remove", "ad-999999", "-a", "blog", "--yes"), "has no add-on ad-999999"),
        (("addons", "add", "redis", "-a", "nope"), "no app named 'nope'"),
    ]:
        result = cli(platform, *argv)
        assert result.returncode == 1, argv
        assert message in result.stderr, (argv, result.stderr)
    # Another app's add-on is not reachable by its id through this app.
    shop = json.loads(cli(platform, "addons", "-a", "shop", "--json").stdout)[0]
    result = cli(platform, "addons", "remove", shop["id"], "-a", "blog", "--yes")
    assert result.returncode == 1 and f"has no add-on {shop['id']}" in result.stderr
    assert env_of(platform, "blog") == env
    confirm = platform.call("DELETE", f"/v1/apps/shop/addons/{shop['id']}", None, expect=422)
    assert "confirm" in json.dumps(confirm)

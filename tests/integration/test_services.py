"""Each private service fixture starts the real program and answers as it should."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import redis
import sqlalchemy as sa

from tests.services import Postgres, RedisServer, Sidekiq, Sshd, redis_cli


def test_redis_answers_and_is_private(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    assert client.config_get("save")["save"] == ""
    assert client.config_get("port")["port"] != "6379"


def test_two_redis_servers_run_side_by_side(redis_server: RedisServer) -> None:
    with RedisServer() as other:
        assert other.port != redis_server.port
        redis.Redis.from_url(other.url).set("only-here", "1")
        assert redis.Redis.from_url(redis_server.url).get("only-here") is None


def test_sshd_accepts_the_test_key_and_runs_a_command(sshd: Sshd) -> None:
    result = subprocess.run(
        sshd.client_argv("echo", "hello from sshd"), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from sshd\n"


def test_sshd_refuses_a_key_it_does_not_know(sshd: Sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    argv = sshd.client_argv("true")
    argv[argv.index(str(sshd.client_key))] = str(stranger)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 255
    assert "Permission denied" in result.stderr


def test_postgres_answers_a_query(postgres: Postgres) -> None:
    engine = sa.create_engine(postgres.url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("select 40 + 2")).scalar_one() == 42
        version = connection.execute(sa.text("show server_version")).scalar_one()
    engine.dispose()
    assert int(version.split(".")[0]) >= 13


RECORDING_JOB = """
class RecordJob
  include Sidekiq::Worker
  def perform(*args)
    Sidekiq.redis { |conn| conn.rpush("results", JSON.generate(args)) }
  end
end
"""


def test_ruby_sidekiq_runs_a_job_pushed_with_redis_cli(redis_url: str, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.rb"
    jobs.write_text(RECORDING_JOB)
    payload = json.dumps(
        {
            "class": "RecordJob",
            "args": [1, "two", {"three": 3}],
            "queue": "default",
            "jid": "0123456789abcdef01234567",
            "retry": True,
            "created_at": time.time(),
            "enqueued_at": time.time(),
        }
    )
    with Sidekiq(redis_url, jobs) as sidekiq:
        redis_cli(redis_url, "SADD", "queues", "default")
        redis_cli(redis_url, "LPUSH", "queue:default", payload)
        popped = redis.Redis.from_url(redis_url).blpop(["results"], timeout=20)
        assert popped is not None, sidekiq.output()
        assert json.loads(popped[1]) == [1, "two", {"three": 3}]

"""ACME orders against Pebble without a platform: an order is saved as soon as it exists and
resumed after a crash instead of being placed again; the server's refusals come back as
one-line reasons; and no two workers order the same name at once."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from slipway.certs import issuer
from slipway.certs.acme_orders import AcmeDirectory, Challenges, OrderFailed, account_from
from slipway.certs.pem import describe
from slipway.host.ports import free_port
from tests.acme_support import Pebble

pytestmark = pytest.mark.skipif(shutil.which("pebble") is None, reason="pebble is missing")


class ChallengeServer(ThreadingHTTPServer):
    """Answers HTTP-01 as the router would, from what is published."""

    def __init__(self, port: int) -> None:
        self.answers: dict[str, str] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.rsplit("/", 1)[-1]
                body = server.answers.get(token)
                self.send_response(200 if body else 404)
                self.end_headers()
                if body:
                    self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", port), Handler)

    def challenges(self) -> Challenges:
        return Challenges(self.answers.__setitem__, self.withdraw)

    def withdraw(self, token: str) -> None:
        self.answers.pop(token, None)


@pytest.fixture(scope="module")
def pebble() -> Iterator[tuple[Pebble, ChallengeServer]]:
    server = ChallengeServer(free_port())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with Pebble(server.server_address[1]) as pebble:
        yield pebble, server
    server.shutdown()
    server.server_close()


def directory(pebble: Pebble, account_record: dict[str, str | None] | None = None) -> AcmeDirectory:
    return AcmeDirectory(
        pebble.directory_url,
        account_from(account_record),
        "ops@example.test",
        str(pebble.ca_bundle),
    )


class Crash(Exception):
    pass


def test_a_crashed_order_is_resumed_not_placed_again(
    pebble: tuple[Pebble, ChallengeServer],
) -> None:
    acme, answers = pebble
    first = directory(acme)
    saved: list[tuple[str, str]] = []

    def save_then_crash(url: str, key: str) -> None:
        saved.append((url, key))
        raise Crash  # the worker dies right after the order was recorded

    with pytest.raises(Crash):
        first.certificate("resume.example.test", None, None, save_then_crash, answers.challenges())
    assert len(saved) == 1
    account = {"key": first.account.key, "registration": first.account.registration}
    again: list[tuple[str, str]] = []
    chain, key = directory(acme, account).certificate(
        "resume.example.test",
        *saved[0],
        lambda url, order_key: again.append((url, order_key)),
        answers.challenges(),
    )
    assert again == []  # the saved order went on: no new one
    assert key == saved[0][1]
    assert describe(chain).names == ["resume.example.test"]
    assert answers.answers == {}  # challenges withdrawn


def test_a_failed_validation_is_one_line_with_the_servers_reason(
    pebble: tuple[Pebble, ChallengeServer],
) -> None:
    acme, _ = pebble
    nowhere = Challenges(lambda token, value: None, lambda token: None)  # nothing answers
    with pytest.raises(OrderFailed) as failure:
        directory(acme).certificate("fails.example.test", None, None, lambda *a: None, nowhere)
    reason = str(failure.value)
    assert "\n" not in reason and "404" in reason, reason
    with pytest.raises(OrderFailed) as malformed:
        directory(acme).certificate(
            "under_score.example.test", None, None, lambda *a: None, nowhere
        )
    assert "malformed" in str(malformed.value)


def test_an_unreachable_directory_is_a_reason_too() -> None:
    url = f"https://127.0.0.1:{free_port()}/dir"
    with pytest.raises(OrderFailed, match="cannot be reached"):
        AcmeDirectory(url, account_from(None), None, None)


def test_a_name_being_ordered_is_not_ordered_twice(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second worker sees the lock and leaves: it never reaches the API (here nothing
    listens where the API would be, so reaching it would fail the job)."""
    monkeypatch.setenv("SLIPWAY_REDIS_URL", redis_url)
    monkeypatch.setenv("SLIPWAY_ACME_DIRECTORY", "https://acme.test/dir")
    monkeypatch.setenv("SLIPWAY_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("SLIPWAY_INTERNAL_SECRET", "x" * 40)
    monkeypatch.setenv("SLIPWAY_ACME_DNS_CHECK", "false")
    held = redis.Redis.from_url(redis_url).lock("slipway:acme:www.example.test", timeout=60)
    assert held.acquire(blocking=False)
    issuer.issue_certificate("www.example.test")  # returns at once
    held.release()
    with pytest.raises(Exception, match="unreachable"):
        issuer.issue_certificate("www.example.test")  # now it goes on, to the (absent) API

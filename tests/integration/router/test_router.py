"""The router: a real HAProxy, driven through its runtime API. Hosts route to their app's
instances, unknown hosts get a 404 page, an app without instances a 503 page, and a switch
from one set of instances to another under load fails no request."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from slipway.applog.routerlog import listen_for_lines
from slipway.embedded.supervisor import Service
from slipway.host.ports import free_port
from slipway.router.haproxy import RouterFiles, router_service
from slipway.router.table import Router, Target

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is missing")


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a kept-alive connection the router closes when it retires an instance


class Instance:
    """An app instance: answers with its name and the headers it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        instance = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                body = json.dumps({"name": instance.name, "headers": headers}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def target(self) -> Target:
        return Target(self.name, "127.0.0.1", self.port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RunningRouter:
    def __init__(self, service: Service, router: Router, port: int) -> None:
        self.service, self.router, self.port = service, router, port

    def get(self, host: str, client: httpx.Client | None = None) -> httpx.Response:
        http = client or httpx
        return http.get(f"http://127.0.0.1:{self.port}/", headers={"Host": host}, timeout=10)


@pytest.fixture(scope="module")
def running() -> Iterator[RunningRouter]:
    directory = Path(tempfile.mkdtemp(prefix="sw-router-"))  # short: a unix socket's path
    port = free_port()
    service = router_service(directory, "127.0.0.1", port, slots=20, https_port=free_port())
    # Where its lines go, left unread: HAProxy spins while nothing listens there.
    lines = listen_for_lines(RouterFiles(directory).log_socket)
    service.start()
    try:
        yield RunningRouter(service, Router(RouterFiles(directory), slots=20), port)
    finally:
        service.stop()
        lines.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def instances() -> Iterator[list[Instance]]:
    started: list[Instance] = []
    yield started
    for instance in started:
        instance.stop()


def start(instances: list[Instance], name: str) -> Instance:
    instance = Instance(name)
    instances.append(instance)
    return instance


def test_an_unknown_host_gets_a_404_page(running: RunningRouter) -> None:
    response = running.get("nobody.localhost")
    assert response.status_code == 404
    assert "No such app" in response.text


def test_an_app_without_instances_gets_a_503_page(running: RunningRouter) -> None:
    running.router.switch("empty", [])
    response = running.get("empty.localhost")
    assert response.status_code == 503
    assert "App unavailable" in response.text


def test_hosts_route_to_their_apps_instances_round_robin(
    running: RunningRouter, instances: list[Instance]
) -> None:
    a, b = start(instances, "web-1"), start(instances, "web-2")
    running.router.switch("shop", [a.target, b.target])
    seen = {running.get(host).json()["name"] for host in ["shop.localhost"] * 4}
    assert seen == {"web-1", "web-2"}
    # The host's case and port do not matter.
    assert running.get(f"SHOP.localhost:{running.port}").status_code == 200
    assert running.router.targets("shop") == [a.target, b.target]
    assert "shop.localhost slot" in running.router.files.hosts_map.read_text()


def test_forwarding_headers_reach_the_app(
    running: RunningRouter, instances: list[Instance]
) -> None:
    running.router.switch("headers", [start(instances, "web-1").target])
    seen = running.get("headers.localhost").json()["headers"]
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "headers.localhost"
    assert seen["x-request-id"]
    other = running.get("headers.localhost").json()["headers"]["x-request-id"]
    assert other != seen["x-request-id"]


def test_a_switch_under_load_fails_no_request(
    running: RunningRouter, instances: list[Instance]
) -> None:
    old = start(instances, "web-1-v1")
    running.router.switch("busy", [old.target])
    errors: list[str] = []
    answers: list[tuple[float, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client() as client:  # keep-alive, as browsers and proxies do
            while not stop.is_set():
                try:
                    response = running.get("busy.localhost", client)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}")
                    else:
                        answers.append((time.monotonic(), response.json()["name"]))
                except httpx.HTTPError as error:
                    errors.append(repr(error))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        for version in range(2, 6):
            time.sleep(0.3)
            new = start(instances, f"web-1-v{version}")
            running.router.switch("busy", [new.target])
            switched = time.monotonic()
            old.stop()  # only now: the router sends it nothing any more
            old = new
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(answers) > 100
    assert {name for at, name in answers if at > switched + 0.05} == {"web-1-v5"}


def test_unrouting_an_app_makes_its_host_unknown(
    running: RunningRouter, instances: list[Instance]
) -> None:
    running.router.switch("gone", [start(instances, "web-1").target])
    assert running.get("gone.localhost").status_code == 200
    running.router.unroute("gone")
    assert running.get("gone.localhost").status_code == 404
    assert "gone.localhost" not in running.router.files.hosts_map.read_text()


def test_an_instance_taken_out_and_back_serves_again(
    running: RunningRouter, instances: list[Instance]
) -> None:
    # What a crash and a restart of the same instance do: out of rotation, then back.
    a = start(instances, "web-1")
    with httpx.Client() as client:  # a kept-alive connection: HAProxy keeps one to a too
        running.router.switch("again", [a.target])
        assert running.get("again.localhost", client).status_code == 200
        running.router.switch("again", [])
        assert running.get("again.localhost", client).status_code == 503
        running.router.switch("again", [a.target])
        assert running.get("again.localhost", client).json()["name"] == "web-1"
    assert running.router.targets("again") == [a.target]

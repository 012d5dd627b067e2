"""HAProxy's configuration for the router, and the embedded router service `up` starts."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from slipway.embedded.supervisor import Service, ServiceError
from slipway.router.runtime import RuntimeApi

NOT_FOUND_PAGE = (
    "<!doctype html><title>No such app</title>"
    "<h1>No such app</h1><p>No app answers at this address. Check its name.</p>"
)
UNAVAILABLE_PAGE = (
    "<!doctype html><title>App unavailable</title>"
    "<h1>App unavailable</h1><p>This app has no web process running right now. "
    "Its owner can check it with <code>slipway ps</code> and <code>slipway logs</code>.</p>"
)


# One line per request, for the app's log: host, method, URI, status, bytes, total time
# (ms), server (the instance) and request id, tab-separated.
ACCESS_LOG_FORMAT = "%[capture.req.hdr(0),lower,field(1,:)]\\t%HM\\t%HU\\t%ST\\t%B\\t%Ta\\t%s\\t%ID"


def slot_name(index: int) -> str:
    return f"slot{index:04d}"


@dataclass(frozen=True)
class RouterFiles:
    """The router's directory: its configuration, map, pages and sockets."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "haproxy.cfg"

    @property
    def hosts_map(self) -> Path:
        return self.directory / "hosts.map"

    @property
    def unavailable_page(self) -> Path:
        return self.directory / "503.http"

    @property
    def admin_socket(self) -> Path:
        """The runtime API (level admin): only this user may connect (mode 0600)."""
        return self.directory / "api.sock"

    @property
    def master_socket(self) -> Path:
        return self.directory / "cli.sock"

    @property
    def log_socket(self) -> Path:
        """Where the router sends a line per request (a datagram socket the runner
        binds: slipway.applog.routerlog)."""
        return self.directory / "log.sock"


def render_config(
    files: RouterFiles, host: str, port: int, slots: int, first_byte_timeout: int
) -> str:
    """The whole configuration: a frontend on ``host:port`` routing by Host header through
    the map, an "unknown" backend answering 404, and ``slots`` empty backends for apps."""
    lines = [
        "global",
        "    master-worker",
        # One thread: on a small host the apps need the other cores (bench/router.py on 2
        # cores: 0.63-0.88x of direct throughput at 50 connections, against 0.40x with 2).
        "    nbthread 1",
        f"    stats socket {files.admin_socket} mode 600 level admin expose-fd listeners",
        "    stats timeout 2m",
        f"    log unix@{files.log_socket} len 8192 format raw local0 info",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    timeout connect 5s",
        "    timeout client 60s",
        # Heroku's H12: the app has this long to start answering (and to send each chunk).
        f"    timeout server {first_byte_timeout}s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    timeout tunnel 1h",  # WebSockets, once upgraded
        "    option forwardfor",
        "    retries 3",
        "",
        "frontend apps",
        f"    bind {host}:{port}",
        "    http-request capture req.hdr(host) len 128",
        f"    log-format {ACCESS_LOG_FORMAT}",
        "    http-request set-header X-Forwarded-Proto http",
        "    http-request set-header X-Forwarded-Host %[req.hdr(host)]",
        "    unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid",
        "    http-request set-header X-Request-Id %[unique-id]"
        " unless { req.hdr(x-request-id) -m found }",
        f"    use_backend %[req.hdr(host),lower,field(1,:),map({files.hosts_map},unknown)]",
        "",
        "backend unknown",
        f'    http-request return status 404 content-type text/html string "{NOT_FOUND_PAGE}"',
    ]
    for index in range(1, slots + 1):
        lines += [
            "",
            f"backend {slot_name(index)}",
            "    balance roundrobin",
            # A connection refused (an instance just stopped) goes to another instance.
            "    retry-on conn-failure",
            "    option redispatch 1",
            f"    errorfile 503 {files.unavailable_page}",
        ]
    return "\n".join(lines) + "\n"


def write_files(files: RouterFiles, host: str, port: int, slots: int, timeout: int) -> None:
    files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files.config.write_text(render_config(files, host, port, slots, timeout))
    files.hosts_map.touch()
    body = UNAVAILABLE_PAGE.encode()
    files.unavailable_page.write_bytes(
        b"HTTP/1.0 503 Service Unavailable\r\nCache-Control: no-cache\r\n"
        b"Connection: close\r\nContent-Type: text/html\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def haproxy_argv(files: RouterFiles) -> list[str]:
    executable = shutil.which("haproxy")
    if executable is None:
        raise ServiceError("haproxy is not installed (Debian package: haproxy)")
    # -W master-worker, -db in the foreground (the supervisor runs it), -S the master's CLI.
    return [executable, "-W", "-db", "-f", str(files.config), "-S", str(files.master_socket)]


def router_service(
    directory: Path, host: str, port: int, slots: int = 500, timeout: int = 30, domain: str = ""
) -> Service:
    files = RouterFiles(directory)
    write_files(files, host, port, slots, timeout)
    runtime = RuntimeApi(files.admin_socket)
    return Service(
        name="router",
        argv=haproxy_argv(files),
        listens=f"http://{host}:{port}"
        + (f"  apps at http://APP.{domain}:{port}" if domain else ""),
        ready=runtime.answers,
        log_path=str(directory / "haproxy.log"),
    )

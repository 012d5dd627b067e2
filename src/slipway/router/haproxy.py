"""HAProxy's configuration for the router, and the embedded router service `up` starts."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from slipway.embedded.supervisor import Service, ServiceError
from slipway.router import LOG_LINE_MAX, LOG_RING, LOG_RING_BYTES, certificates
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
ACCESS_LOG_FORMAT = "%[var(txn.host)]\\t%HM\\t%HU\\t%ST\\t%B\\t%Ta\\t%s\\t%ID"


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
    def domains_map(self) -> Path:
        """An app's own domains → the app's host (APP.DOMAIN), which hosts.map routes."""
        return self.directory / "domains.map"

    @property
    def https_map(self) -> Path:
        """Hosts whose HTTP requests are redirected to HTTPS."""
        return self.directory / "https.map"

    @property
    def acme_map(self) -> Path:
        """ACME HTTP-01 tokens → their key authorizations, while an order runs."""
        return self.directory / "acme.map"

    @property
    def certs_dir(self) -> Path:
        return self.directory / "certs"

    @property
    def crt_list(self) -> Path:
        return self.directory / "certs.list"

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
    files: RouterFiles,
    host: str,
    port: int,
    slots: int,
    first_byte_timeout: int,
    https_port: int,
) -> str:
    """The whole configuration: a frontend on ``host:port`` (HTTP) and ``https_port`` (TLS,
    the certificate chosen by SNI) routing by Host header through the maps (an app's own
    domain → its host → its slot), an "unknown" backend answering 404, and ``slots`` empty
    backends for apps. ACME's HTTP-01 challenges are answered here, before any redirect."""
    https = "" if https_port == 443 else f":{https_port}"
    lines = [
        "global",
        "    master-worker",
        # One thread: on a small host the apps need the other cores (bench/router.py on 2
        # cores: 0.63-0.88x of direct throughput at 50 connections, against 0.40x with 2).
        "    nbthread 1",
        f"    stats socket {files.admin_socket} mode 600 level admin expose-fd listeners",
        "    stats timeout 2m",
        # AES-128-GCM first: as safe as AES-256 here and a third cheaper per byte.
        "    ssl-default-bind-ciphersuites"
        " TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
        "    ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
        ":ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
        ":ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
        "    ssl-default-bind-options ssl-min-ver TLSv1.2",
        f"    log ring@{LOG_RING} len {LOG_LINE_MAX} format raw local0 info",
        "",
        # The lines wait here while the runner reads them (slipway.applog.routerlog).
        f"ring {LOG_RING}",
        "    format raw",
        f"    maxlen {LOG_LINE_MAX}",
        f"    size {LOG_RING_BYTES}",
        "    timeout connect 5s",
        "    timeout server 1h",
        f"    server runner unix@{files.log_socket} log-proto legacy",
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
        f"    bind {host}:{https_port} ssl crt {files.certs_dir / 'default.pem'}"
        f" crt-list {files.crt_list} alpn h2,http/1.1",
        f"    log-format {ACCESS_LOG_FORMAT}",
        "    http-request set-var(txn.host) req.hdr(host),lower,field(1,:)",
        f"    http-request set-var(txn.host) var(txn.host),map({files.domains_map})"
        f" if {{ var(txn.host),map({files.domains_map}) -m found }}",
        "    http-request return status 200 content-type text/plain"
        f' lf-string "%[path,field(4,/),map({files.acme_map})]"'
        " if { path_beg /.well-known/acme-challenge/ }"
        f" {{ path,field(4,/),map({files.acme_map}) -m found }}",
        f"    http-request redirect prefix https://%[req.hdr(host),field(1,:)]{https} code 308"
        f" if !{{ ssl_fc }} {{ req.hdr(host),lower,field(1,:),map({files.https_map}) -m found }}",
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }",
        "    http-request set-header X-Forwarded-Host %[req.hdr(host)]",
        "    unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid",
        "    http-request set-header X-Request-Id %[unique-id]"
        " unless { req.hdr(x-request-id) -m found }",
        f"    use_backend %[var(txn.host),map({files.hosts_map},unknown)]",
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


def write_files(
    files: RouterFiles,
    host: str,
    port: int,
    slots: int,
    timeout: int,
    https_port: int,
    apps_domain: str,
) -> None:
    files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files.config.write_text(render_config(files, host, port, slots, timeout, https_port))
    for map_file in (files.hosts_map, files.domains_map, files.https_map):
        map_file.touch()
    files.acme_map.write_text("")  # challenges of orders in flight: asked again on retry
    certificates.prepare(files.certs_dir, files.crt_list, apps_domain)
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
    directory: Path,
    host: str,
    port: int,
    slots: int = 500,
    timeout: int = 30,
    domain: str = "localhost",
    https_port: int = 8443,
) -> Service:
    files = RouterFiles(directory)
    write_files(files, host, port, slots, timeout, https_port, domain)
    runtime = RuntimeApi(files.admin_socket)
    return Service(
        name="router",
        argv=haproxy_argv(files),
        listens=f"http://{host}:{port} https://{host}:{https_port}  apps at http://APP.{domain}:{port}",
        ready=runtime.answers,
        log_path=str(directory / "haproxy.log"),
    )

"""Let's Encrypt's test ACME server, Pebble (Debian package ``pebble``), for certificate tests.

Pebble validates HTTP-01 by fetching ``http://NAME:HTTP_PORT/.well-known/acme-challenge/``;
its names resolve through a small DNS responder here that answers every A question with
``address`` (changeable: a name that moves away fails validation, as it would for real) and
no AAAA. Its own HTTPS listener has a certificate from a CA of this module (``ca_bundle``),
trusted by the platform under test only; what it issues chains to ``roots/0``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import socketserver
import ssl
import struct
import subprocess
import tempfile
import threading
from pathlib import Path

import httpx

from slipway.host.ports import free_port
from tests.services import _Service, stop_process, wait_until
from tests.tls_support import TestCa


class _AnswerEveryName(socketserver.BaseRequestHandler):
    """A question for an A record gets ``server.address``; any other, an empty answer."""

    server: _DnsServer

    def handle(self) -> None:
        data, sock = self.request
        if len(data) < 12:
            return
        query_id, flags = struct.unpack("!HH", data[:4])
        end = 12
        while end < len(data) and data[end] != 0:
            end += data[end] + 1
        qtype = struct.unpack("!H", data[end + 1 : end + 3])[0]
        question = data[12 : end + 5]
        answer = b""
        if qtype == 1:
            address = socket.inet_aton(self.server.address)
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + address
        header = struct.pack("!HHHHHH", query_id, 0x8400 | (flags & 0x0100), 1, bool(answer), 0, 0)
        sock.sendto(header + question + answer, self.client_address)


class _DnsServer(socketserver.ThreadingUDPServer):
    address = "127.0.0.1"


class Pebble(_Service):
    def __init__(self, http_port: int, validity_seconds: int = 0) -> None:
        self.http_port = http_port
        self.validity_seconds = validity_seconds
        self.dir = Path(tempfile.mkdtemp(prefix="slipway-pebble-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.dns: _DnsServer | None = None

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def ca_bundle(self) -> Path:
        """The CA of Pebble's own HTTPS listener (not of what it issues)."""
        return self.dir / "listener-ca.pem"

    def point_names_at(self, address: str) -> None:
        assert self.dns is not None
        self.dns.address = address

    def root(self) -> str:
        """The root that what Pebble issues chains to (a new one at each start)."""
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        return httpx.get(url, verify=self._trust(), timeout=10).text

    def start(self) -> None:
        listener_ca = TestCa("Pebble listener CA")
        self.ca_bundle.write_text(listener_ca.pem)
        chain, key = listener_ca.issue("localhost", ip="127.0.0.1")
        (self.dir / "cert.pem").write_text(chain)
        (self.dir / "key.pem").write_text(key)
        self.dns = _DnsServer(("127.0.0.1", 0), _AnswerEveryName)
        threading.Thread(target=self.dns.serve_forever, daemon=True).start()
        dns_port = self.dns.server_address[1]
        self.port, self.management_port = free_port(), free_port()
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(self.dir / "cert.pem"),
                "privateKey": str(self.dir / "key.pem"),
                "httpPort": self.http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": self.validity_seconds,
            }
        }
        (self.dir / "pebble.json").write_text(json.dumps(config))
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
        env["PEBBLE_AUTHZREUSE"] = "0"  # every order validates again
        executable = shutil.which("pebble")
        assert executable is not None, "pebble is missing (Debian package pebble)"
        self.process = subprocess.Popen(
            [
                executable,
                "-config",
                str(self.dir / "pebble.json"),
                "-dnsserver",
                f"127.0.0.1:{dns_port}",
            ],
            env=env,
            stdout=open(self.dir / "pebble.log", "wb"),  # noqa: SIM115 - the child keeps it
            stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, 20, "pebble", self.process)

    def _answers(self) -> bool:
        try:
            httpx.get(self.directory_url, verify=self._trust(), timeout=2)
            return True
        except httpx.HTTPError:
            return False

    def _trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        if self.dns is not None:
            self.dns.shutdown()
            self.dns.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)

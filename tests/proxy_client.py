"""An ssh ProxyCommand that speaks for a load balancer: it sends a PROXY protocol header
(v1 or v2, announcing 203.0.113.7:5555) and then relays stdin and stdout.

    ssh -o ProxyCommand="python tests/proxy_client.py HOST PORT v1|v2|none" ...
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import socket
import struct
import sys

CLIENT = ("203.0.113.7", 5555)
SERVER = ("10.0.0.1", 22)


def header(version: str) -> bytes:
    if version == "v1":
        return f"PROXY TCP4 {CLIENT[0]} {SERVER[0]} {CLIENT[1]} {SERVER[1]}\r\n".encode()
    if version == "v2":
        body = (
            ipaddress.IPv4Address(CLIENT[0]).packed
            + ipaddress.IPv4Address(SERVER[0]).packed
            + struct.pack("!HH", CLIENT[1], SERVER[1])
        )
        return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
    return b""


def main() -> None:
    host, port, version = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = socket.create_connection((host, port))
    sock.sendall(header(version))
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                data = sock.recv(65536)
                if not data:
                    return
                os.write(sys.stdout.fileno(), data)
            else:
                data = os.read(sys.stdin.fileno(), 65536)
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    selector.unregister(sys.stdin.fileno())
                else:
                    sock.sendall(data)


if __name__ == "__main__":
    main()

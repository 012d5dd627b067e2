"""Stop asyncssh from sending an empty ``MSG_IGNORE`` before every packet.

asyncssh inserts one ahead of each packet once keys are in use: RFC 4251 §9.3.1's defence
for CBC ciphers, whose next IV an eavesdropper can predict. Slipway never offers a CBC
cipher (AES-GCM, chacha20-poly1305 and AES-CTR chain no IV), and OpenSSH sends
no such packets. For bulk data (a database tunnel, a clone) each one costs a second
encryption and a second ``send`` per packet, and the peer a second decryption.
"""

from __future__ import annotations

from typing import Any

import asyncssh
from asyncssh.constants import MSG_IGNORE


def skip_ignore_packets(conn: asyncssh.SSHClientConnection | asyncssh.SSHServerConnection) -> None:
    """Drop asyncssh's padding packets on ``conn`` (whose ciphers must not include CBC): the
    only ``MSG_IGNORE`` it sends."""
    send_packet = conn.send_packet

    def send_unpadded(pkttype: int, *args: bytes, **kwargs: Any) -> None:
        if pkttype != MSG_IGNORE:
            send_packet(pkttype, *args, **kwargs)

    conn.send_packet = send_unpadded  # type: ignore[method-assign]


class UnpaddedClient(asyncssh.SSHClient):
    """A client (``client_factory=``) that sends no padding packets from the first."""

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        skip_ignore_packets(conn)

"""An ssh ProxyCommand that can stop a download half-way, to keep a clone running across
upgrades for as long as a test wants.

    ssh -o ProxyCommand="python tests/throttled_proxy.py %h %p HOLD_FILE" ...

Once a MiB has come down, it waits while HOLD_FILE exists (and creates HOLD_FILE.reached to
say so); the upload direction always flows.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

CHUNK = 16 * 1024
HOLD_AFTER = 1024 * 1024


def upload(sock: socket.socket) -> None:
    while data := os.read(0, CHUNK):
        sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)


def main() -> None:
    host, port, hold = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    sock = socket.create_connection((host, port))
    threading.Thread(target=upload, args=(sock,), daemon=True).start()
    delivered = 0
    while data := sock.recv(CHUNK):
        os.write(1, data)
        delivered += len(data)
        if delivered >= HOLD_AFTER and hold.exists():
            hold.with_suffix(".reached").touch()
            while hold.exists():
                time.sleep(0.05)


if __name__ == "__main__":
    main()

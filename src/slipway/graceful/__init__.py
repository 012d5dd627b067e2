"""Zero-downtime restarts: a new version takes over the same listening sockets.

Like cloudflare/tableflip: the running process (or a supervisor holding the sockets) starts
the new version with the listening sockets inherited, waits for it to say it is ready, and
only then stops accepting and drains. The sockets never close, so no connection is refused;
if the new version crashes or never gets ready, it is killed and the old one keeps serving.
systemd's socket activation (LISTEN_FDS) and readiness (NOTIFY_SOCKET) work too.

It imports nothing else from Slipway.
"""

from slipway.graceful.accept import accept_connections, stop_accepting
from slipway.graceful.handoff import (
    Successor,
    UpgradeFailed,
    inherited_sockets,
    listen,
    ready,
    spawn_successor,
)

__all__ = [
    "Successor",
    "UpgradeFailed",
    "accept_connections",
    "inherited_sockets",
    "listen",
    "ready",
    "spawn_successor",
    "stop_accepting",
]

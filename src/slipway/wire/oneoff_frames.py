"""The frames of a one-off's WebSocket (`slipway run`), the same from the CLI through the
API to the runner: binary messages whose first byte names the channel, as in Kubernetes'
exec protocol.

Before them, the CLI sends one text message: the request (command, tty, size, env, files,
detached). Uploaded files come first, on UPLOAD, in the order and sizes the request
listed; then the runner starts the process and says STATUS {"started": "run.N"}. The
process's exit status ends the session: STATUS {"exit": N}; a refusal or a failure:
STATUS {"error": "..."}.
"""

from __future__ import annotations

import json
from typing import Any

STDIN = 0  # client → process; an empty payload is end of input
STDOUT = 1  # process → client
STDERR = 2  # process → client (a tty mixes it into STDOUT)
STATUS = 3  # runner → client: JSON
RESIZE = 4  # client → process: JSON {"cols": C, "rows": R}
UPLOAD = 5  # client → runner, before the start: the files' bytes

CHUNK = 256 * 1024  # bytes per frame, at most
MAX_FRAME = CHUNK + 1024
MAX_UPLOAD = 100 * 1024 * 1024  # bytes of --file uploads per one-off


def frame(channel: int, data: bytes = b"") -> bytes:
    return bytes([channel]) + data


def status(**fields: Any) -> bytes:
    return frame(STATUS, json.dumps(fields).encode())


def parse(message: bytes) -> tuple[int, bytes]:
    """The channel and payload; ValueError for an empty message."""
    if not message:
        raise ValueError("an empty frame")
    return message[0], message[1:]

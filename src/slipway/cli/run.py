"""``run``: a one-off process in the app's environment, attached to this terminal (or to
these pipes), over a WebSocket to the API (frames in slipway.wire.oneoff_frames)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import termios
import threading
import tty
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from slipway import __version__
from slipway.cli import config
from slipway.cli.appname import detect_app
from slipway.cli.errors import CliError
from slipway.cli.options import AppOption, RemoteOption
from slipway.wire import oneoff_frames as frames

LOST = 255  # exit status when the session ends without the process's (as ssh does)


def run(
    command: Annotated[
        list[str],
        typer.Argument(
            metavar="-- COMMAND [ARGS]...",
            help="One argument is a shell command line ('echo $PORT'); several are quoted.",
            show_default=False,
        ),
    ],
    size: Annotated[
        str | None,
        typer.Option("-s", "--size", help="Memory: S 256 MB, M 512 MB, L 1 GB, XL 2 GB."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("-e", "--env", metavar="NAME=VALUE", help="A variable (repeatable)."),
    ] = None,
    detached: Annotated[
        bool,
        typer.Option("-d", "--detached", help="Return at once; output goes to the app's logs."),
    ] = False,
    files: Annotated[
        list[Path] | None,
        typer.Option("-f", "--file", help="Upload into /tmp/uploads (repeatable).", dir_okay=False),
    ] = None,
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Run a one-off process of the app's current release, with its config, as `web`
    instances run (e.g. `slipway run bash`, `slipway run -- python manage.py migrate`).

    With a terminal, it gets one (resizes, Ctrl-C and Ctrl-Z reach it); without, stdin,
    stdout and stderr are piped apart, byte for byte. The exit status is the process's.
    A one-off silent (no input, no output) for an hour is stopped."""
    name = detect_app(app, remote)
    login = config.effective()
    if not login.api_url or not login.token:
        raise CliError("not logged in: run `slipway login --api-url URL --token TOKEN`")
    interactive = sys.stdin.isatty() and not detached
    request: dict[str, Any] = {
        "command": command[0] if len(command) == 1 else shlex.join(command),
        "tty": interactive,
        "env": dict(_variable(item) for item in env or []),
        "size": size.upper() if size else None,
        "detached": detached,
        "files": [_upload(path) for path in files or []],
    }
    if interactive:
        columns, rows = os.get_terminal_size(sys.stdin.fileno())
        request |= {"cols": columns, "rows": rows, "term": os.environ.get("TERM", "xterm")}
    url = login.api_url.replace("http", "ws", 1) + f"/v1/apps/{quote(name, safe='')}/run"
    try:
        ws = connect(
            url,
            additional_headers={"Authorization": f"Bearer {login.token}"},
            user_agent_header=f"slipway-cli/{__version__}",
            max_size=frames.MAX_FRAME,
            open_timeout=10,
            compression=None,  # output is often binary or already small: not worth the CPU
        )
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as error:
        raise CliError(f"cannot reach the Slipway API at {login.api_url}: {error}") from None
    with ws:
        ws.send(json.dumps(request))
        for path in files or []:
            with path.open("rb") as upload:
                while chunk := upload.read(frames.CHUNK):
                    ws.send(frames.frame(frames.UPLOAD, chunk))
        started = _started(ws)
        if detached:
            print(
                f"{started} started on {name}; its output: slipway logs -a {name} -F {started}",
                file=sys.stderr,
            )
            return
        if interactive:
            print(f"Running `{request['command']}` on {name} as {started}...", file=sys.stderr)
        code = Session(ws, interactive).run()
    raise typer.Exit(code)


def _variable(item: str) -> tuple[str, str]:
    name, equals, value = item.partition("=")
    if not equals or not name:
        raise CliError(f"invalid variable {item!r}: use NAME=VALUE")
    return name, value


def _upload(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise CliError(f"cannot upload {path}: {error.strerror}") from None
    return {"name": path.name, "size": size}


def _started(ws: ClientConnection) -> str:
    """The one-off's name once it runs; CliError with the platform's reason if it does not."""
    try:
        message = ws.recv(timeout=120)
    except (ConnectionClosed, TimeoutError):
        raise CliError("the platform ended the session before the one-off started") from None
    if isinstance(message, bytes) and message[:1] == bytes([frames.STATUS]):
        status = json.loads(message[1:])
        if "started" in status:
            return str(status["started"])
        raise CliError(str(status.get("error") or status))
    raise CliError("the platform answered with an unknown frame")


class Session:
    """Relays this process's stdin, stdout, stderr and terminal size to the one-off."""

    def __init__(self, ws: ClientConnection, interactive: bool) -> None:
        self.ws = ws
        self.interactive = interactive

    def run(self) -> int:
        saved = termios.tcgetattr(sys.stdin.fileno()) if self.interactive else None
        previous_winch = None
        try:
            if saved is not None:
                tty.setraw(sys.stdin.fileno())
                previous_winch = signal.signal(signal.SIGWINCH, self._resized)
            threading.Thread(target=self._send_input, name="stdin", daemon=True).start()
            return self._receive()
        except KeyboardInterrupt:
            return 130
        finally:
            if saved is not None:
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
                signal.signal(signal.SIGWINCH, previous_winch or signal.SIG_DFL)

    def _receive(self) -> int:
        try:
            for message in self.ws:
                if not isinstance(message, bytes) or not message:
                    continue
                channel, data = frames.parse(message)
                if channel in (frames.STDOUT, frames.STDERR):
                    _write_all(channel, data)
                elif channel == frames.STATUS:
                    status = json.loads(data)
                    if "exit" in status:
                        return int(status["exit"])
                    if "error" in status:
                        self._say(str(status["error"]))
                        return LOST
        except ConnectionClosed:
            pass
        except BrokenPipeError:
            return 1  # our stdout was closed (`| head`)
        self._say("the connection to the one-off was lost")
        return LOST

    def _send_input(self) -> None:
        descriptor = sys.stdin.fileno()
        with contextlib.suppress(ConnectionClosed, OSError):
            while data := os.read(descriptor, frames.CHUNK):
                self.ws.send(frames.frame(frames.STDIN, data))
            self.ws.send(frames.frame(frames.STDIN))  # end of input

    def _resized(self, signum: int, frame: object) -> None:
        columns, rows = os.get_terminal_size(sys.stdin.fileno())
        size = json.dumps({"cols": columns, "rows": rows}).encode()
        threading.Thread(
            target=self._send_quietly, args=(frames.frame(frames.RESIZE, size),)
        ).start()

    def _send_quietly(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            self.ws.send(message)

    def _say(self, text: str) -> None:
        print(("\r\n" if self.interactive else "") + f"slipway: {text}", file=sys.stderr)


def _write_all(channel: int, data: bytes) -> None:
    descriptor = 1 if channel == frames.STDOUT else 2
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]

"""The small web app that tests and benchmarks push: ``server.py`` of their apps.

It answers ``GREETING VERSION pid=PID`` (GREETING is its config var, ``hello`` by default) on
$PORT, and its query string makes it do what a test needs to see:
``?word=W&n=N`` prints ``W 0``..``W N-1``; ``?burst=N`` / ``?trickle=N`` print N lines at
once / one every 10 ms, after answering; ``?hold=MB`` keeps that much memory; ``?hog=1``
takes memory until it is killed; ``?read=PATH`` answers the file's first 20 characters and
``?kill=PID`` signals a process (what another app's user may not do); ``?header=NAME``
answers the request's header NAME (what the router set). Standard library only:
it runs in the app, not in the test.

Tests get its source with ``source(version)``: a different VERSION makes a different commit.
"""

import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

VERSION = "v0"
KEEP_ALIVE = False  # HTTP/1.1 connections kept open (load tests), else one per request
HELD: list[bytes] = []


def source(version: str, keep_alive: bool = False) -> str:
    """This file, as an app's ``server.py`` answering with ``version``."""
    text = Path(__file__).read_text()
    text = text.replace('VERSION = "v0"', f"VERSION = {version!r}", 1)
    return text.replace("KEEP_ALIVE = False", f"KEEP_ALIVE = {keep_alive}", 1)


def print_lines(count: int, every: float = 0.0) -> None:
    for i in range(count):
        sys.stdout.write(f"line {i} at {time.time():.6f}\n")
        if every:
            sys.stdout.flush()
            time.sleep(every)
    sys.stdout.flush()


def answer(query: dict[str, list[str]], headers: dict[str, str]) -> str:
    if "header" in query:
        return headers.get(query["header"][0].lower(), "(none)")
    if "read" in query:
        try:
            with open(query["read"][0]) as file:
                return "read " + file.read(20)
        except OSError as error:
            return "refused " + type(error).__name__
    if "kill" in query:
        try:
            os.kill(int(query["kill"][0]), signal.SIGTERM)
            return "killed"
        except OSError as error:
            return "refused " + type(error).__name__
    if "hog" in query:
        hoard: list[bytearray] = []
        while True:
            hoard.append(bytearray(16 * 1024 * 1024))
    if "hold" in query:  # megabytes, touched (not lazily zeroed pages)
        HELD.append(b"x" * (int(query["hold"][0]) * 1024 * 1024))
    for i in range(int(query.get("n", ["0"])[0])):
        print(f"{query['word'][0]} {i}", flush=True)
    if "burst" in query:
        threading.Thread(target=print_lines, args=(int(query["burst"][0]),)).start()
    if "trickle" in query:
        threading.Thread(target=print_lines, args=(int(query["trickle"][0]), 0.01)).start()
    return f"{os.environ.get('GREETING', 'hello')} {VERSION} pid={os.getpid()}\n"


class Sample(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1" if KEEP_ALIVE else "HTTP/1.0"

    def do_GET(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = answer(parse_qs(urlparse(self.path).query), headers).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Sample).serve_forever()

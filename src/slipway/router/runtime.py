"""HAProxy's runtime API, over its admin socket: one command per connection, as HAProxy's
non-interactive mode answers (the connection closes after the answer)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 5.0
CONNECTION_REUSE = "pool-max-conn 1000 pool-purge-delay 5s"
MAX_COMMAND = 16000  # bytes: a command and its payload must fit HAProxy's tune.bufsize (16 KB)


class RouterError(Exception):
    """HAProxy refused a command, or could not be reached; the message says which."""


@dataclass(frozen=True)
class Server:
    name: str
    address: str
    port: int
    in_rotation: bool  # not in maintenance (taken out by drain_server)


class RuntimeApi:
    def __init__(self, path: Path) -> None:
        self.path = path

    def command(self, line: str, payload: str | None = None) -> str:
        """One command; with ``payload``, its lines follow (``<<``) up to an empty line, so
        the payload's own empty lines are dropped (HAProxy would run what follows)."""
        if "\n" in line or ";" in line:
            raise ValueError(f"one command at a time: {line!r}")
        data = line.encode() + b"\n"
        if payload is not None:
            lines = [text for text in payload.splitlines() if text.strip()]
            data = f"{line} <<\n".encode() + "\n".join(lines).encode() + b"\n\n"
            if len(data) > MAX_COMMAND:
                raise RouterError(
                    f"{line}: {len(data)} bytes, over the {MAX_COMMAND} HAProxy reads"
                )
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(TIMEOUT)
                sock.connect(str(self.path))
                sock.sendall(data)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as error:
            raise RouterError(f"the router's runtime API is unreachable: {error}") from None
        return b"".join(chunks).decode(errors="replace").strip()

    def answers(self) -> bool:
        try:
            return self.command("show info").startswith("Name: HAProxy")
        except RouterError:
            return False

    def map_entries(self, map_path: Path) -> dict[str, str]:
        """key → value of a map (HAProxy prints "ID KEY VALUE" per line)."""
        entries = {}
        for line in self.command(f"show map {map_path}").splitlines():
            words = line.split()
            if len(words) == 3:
                entries[words[1]] = words[2]
        return entries

    def set_map(self, map_path: Path, key: str, value: str) -> None:
        answer = self.command(f"add map {map_path} {key} {value}")
        if answer:
            raise RouterError(f"add map {key}: {answer}")

    def del_map(self, map_path: Path, key: str) -> None:
        self.command(f"del map {map_path} {key}")

    def put_map(self, map_path: Path, key: str, value: str) -> None:
        """Insert or replace (``add map`` on an existing key would add a second entry, and
        the first one would win)."""
        self.del_map(map_path, key)
        self.set_map(map_path, key, value)

    def servers(self, backend: str) -> list[Server]:
        """The backend's servers (``show servers state``)."""
        found = []
        for line in self.command(f"show servers state {backend}").splitlines():
            words = line.split()
            if len(words) > 18 and not line.startswith("#") and words[1] == backend:
                maintenance = int(words[6]) & 0x01  # srv_admin_state: forced maintenance
                found.append(Server(words[3], words[4], int(words[18]), not maintenance))
        return found

    def add_server(self, backend: str, name: str, address: str, port: int) -> None:
        """A server that keeps idle connections for reuse (servers added at run time keep
        none unless told: each request would open a connection, at a third of the speed)."""
        answer = self.command(f"add server {backend}/{name} {address}:{port} {CONNECTION_REUSE}")
        if "New server registered" not in answer:
            raise RouterError(f"add server {backend}/{name}: {answer}")
        self._expect_empty(f"enable server {backend}/{name}")

    def sessions(self, backend: str, name: str) -> int:
        """Connections the server has now (``scur`` of ``show stat``)."""
        lines = self.command(f"show stat {backend} 4 -1").splitlines()
        header = lines[0].lstrip("# ").split(",") if lines else []
        for line in lines[1:]:
            values = line.split(",")
            if len(values) > 1 and values[1] == name:
                return int(values[header.index("scur")] or 0)
        return 0

    def enable_server(self, backend: str, name: str) -> None:
        self._expect_empty(f"set server {backend}/{name} state ready")

    def drain_server(self, backend: str, name: str) -> None:
        """No new requests to it; the ones it is serving finish."""
        self._expect_empty(f"set server {backend}/{name} state maint")

    def del_server(self, backend: str, name: str) -> bool:
        """Delete a server out of rotation; False while HAProxy still holds connections to
        it (idle ones close when the instance stops)."""
        self._expect_empty(f"shutdown sessions server {backend}/{name}")
        answer = self.command(f"del server {backend}/{name}")
        if "Server deleted" in answer or "No such server" in answer:
            return True
        if "still has connections" in answer:
            return False
        raise RouterError(f"del server {backend}/{name}: {answer}")

    def _expect_empty(self, line: str) -> None:
        answer = self.command(line)
        if answer:
            raise RouterError(f"{line}: {answer}")

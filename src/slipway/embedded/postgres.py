"""The private PostgreSQL cluster that holds add-on databases when the operator configured
none (``SLIPWAY_POSTGRES_ADMIN_URL``): made with initdb on first use, started with pg_ctl,
reachable by the platform through a Unix socket only it may open, and by apps through a
loopback port with a password.

Its files are the ``postgres`` user's when we run as root (PostgreSQL refuses root). It
outlives the process that started it: ``slipwayd up`` starts it when it starts, if it exists,
and stops it when it stops.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from slipway.embedded.supervisor import ServiceError
from slipway.host.filelock import exclusive
from slipway.host.ports import free_port, port_open

START_TIMEOUT = 60  # seconds pg_ctl waits for the server
# The platform (root, or the user running it) comes through the socket, whose directory
# nobody else can enter; everyone else over TCP with a password.
HBA = """\
local   all   postgres                 trust
host    all   all       127.0.0.1/32   scram-sha-256
host    all   all       ::1/128        scram-sha-256
"""


@dataclass(frozen=True)
class Server:
    """Where add-on databases are made: the admin's connection string, and the address
    apps (and the gateway's tunnels) reach."""

    admin_url: str
    host: str
    port: int


def bindir() -> Path:
    """The newest PostgreSQL server binaries (Debian keeps them per major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        raise ServiceError("PostgreSQL is not installed (Debian package: postgresql)")
    return Path(initdb).parent


class PrivatePostgres:
    def __init__(self, root: Path) -> None:
        self.root = root  # traversable by the postgres user
        self.data = root / "data"
        self.sockets = root / "run"
        self.port_file = root / "port"

    @property
    def exists(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def server(self) -> Server:
        port = int(self.port_file.read_text())
        admin = f"postgresql://postgres@/postgres?host={self.sockets}&port={port}"
        return Server(admin_url=admin, host="127.0.0.1", port=port)

    def ensure(self) -> Server:
        """The cluster, made and started if it is not yet; several callers at once get one."""
        self.root.mkdir(mode=0o700, exist_ok=True)
        with exclusive(self.root / ".lock"):
            if not self.exists:
                self._init()
            if not self.running():
                self._start()
        return self.server()

    def start_if_present(self) -> bool:
        """Start the cluster if it exists and is down (at `up`'s start, or after it died):
        whether it had to."""
        if not self.exists or self.running():
            return False
        with exclusive(self.root / ".lock"):
            if self.running():
                return False
            self._start()
            return True

    def running(self) -> bool:
        return self.exists and self._pg_ctl("status").returncode == 0

    def stop(self) -> None:
        if self.running():
            self._pg_ctl("-m", "fast", "-w", "stop")

    def _init(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)  # a half-made one from a crash
        self._own(self.root)
        made = self._run(
            str(bindir() / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "--auth-local=trust"),
            *("--auth-host=scram-sha-256", "-E", "UTF8"),
        )
        if made.returncode != 0:
            raise ServiceError(f"initdb failed: {made.stderr.strip()}")
        hba = self.data / "pg_hba.conf"
        hba.write_text(HBA)
        self._own(hba)
        self.port_file.write_text(f"{free_port()}\n")

    def _start(self) -> None:
        self.sockets.mkdir(mode=0o700, exist_ok=True)
        self._own(self.sockets)
        port = int(self.port_file.read_text())
        if port_open("127.0.0.1", port):
            raise ServiceError(
                f"the add-ons' PostgreSQL cannot start: port {port} is taken by another program"
            )
        options = f"-p {port} -k {self.sockets} -c listen_addresses=127.0.0.1"
        started = self._pg_ctl(
            *("-o", options, "-l", str(self.root / "postgresql.log")),
            *("-w", "-t", str(START_TIMEOUT), "start"),
        )
        if started.returncode != 0:
            raise ServiceError(
                f"the add-ons' PostgreSQL did not start; see {self.root / 'postgresql.log'}"
            )

    def _pg_ctl(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self._run(str(bindir() / "pg_ctl"), "-D", str(self.data), *argv)

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*as_postgres, *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.root,
            start_new_session=True,  # a Ctrl-C to `up` does not reach the server
        )

    @staticmethod
    def _own(path: Path) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(path, owner.pw_uid, owner.pw_gid)

"""Where each kind of add-on lives, and making and removing one: the API calls these; `up`
starts and stops the servers that live in the data dir."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import psycopg

from slipway.addons import postgresql, redis
from slipway.config import Settings
from slipway.embedded.postgres import PrivatePostgres, Server
from slipway.embedded.supervisor import ServiceError
from slipway.host.appuser import apps_root, traversable_dir

log = logging.getLogger("slipway.addons")

KINDS = {"postgresql": postgresql.PLANS, "redis": redis.PLANS}
DEFAULT_PLANS = {"postgresql": postgresql.DEFAULT_PLAN, "redis": redis.DEFAULT_PLAN}
# The variables an add-on sets, first choice first; those the app has already are skipped.
VARIABLES = {"postgresql": ("DATABASE_URL", "POSTGRESQL_URL"), "redis": ("REDIS_URL",)}


@dataclass(frozen=True)
class Made:
    resource: str  # its database and role, or its server's directory
    url: str
    host: str  # where apps and the gateway's tunnels reach it
    port: int


class AddOnError(Exception):
    """The add-on's server refused or is not there: the message says which."""


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        root = apps_root(settings.data_dir, settings.apps_dir)
        self.root = traversable_dir(root / "addons")
        self.private_postgres = PrivatePostgres(self.root / "postgresql")
        self.redis_root = traversable_dir(self.root / "redis")
        self._failing: set[str] = set()  # servers reported as unable to start

    def postgres(self) -> Server:
        admin = self.settings.postgres_admin_url
        if admin is not None:
            return postgresql.configured_server(admin.get_secret_value())
        return self.private_postgres.ensure()

    def create(self, kind: str, plan: str) -> Made:
        resource = f"ad_{secrets.token_hex(6)}"  # never reused: a new add-on starts empty
        try:
            if kind == "postgresql":
                server = self.postgres()
                url = postgresql.create(server, resource, plan)
                return Made(resource, url, server.host, server.port)
            url, port = redis.create(self.redis_root, resource, plan)
            return Made(resource, url, "127.0.0.1", port)
        except (OSError, ServiceError, ValueError, psycopg.Error) as error:
            log.error("cannot make a %s add-on: %s", kind, error)
            raise AddOnError(f"the {kind} service cannot make an add-on now: {error}") from error

    def destroy(self, kind: str, resource: str) -> None:
        try:
            if kind == "postgresql":
                postgresql.destroy(self.postgres(), resource)
            elif kind == "redis":
                redis.destroy(self.redis_root, resource)
        except (OSError, ServiceError, ValueError, psycopg.Error) as error:
            log.error("cannot remove the %s add-on %s: %s", kind, resource, error)
            raise AddOnError(f"the {kind} service cannot remove it now: {error}") from error

    def start_all(self) -> None:
        """The servers in the data dir (at `up`'s start): a failing one is reported, the
        others start."""
        for _, start in self._servers():
            try:
                start()
            except ServiceError as error:
                print(f"  add-ons: {error}", flush=True)

    def keep_running(self) -> None:
        """Start again a server that died since (`up` calls this every few seconds): apps
        get their database back without an operator. One that cannot start is reported
        once, until it starts."""
        for name, start in self._servers():
            try:
                if start():
                    log.warning("%s was down: started again", name)
                    print(f"  add-ons: {name} was down: started again", flush=True)
                self._failing.discard(name)
            except (ServiceError, OSError) as error:  # never out of `up`'s loop
                if name not in self._failing:
                    log.error("%s is down and cannot start: %s", name, error)
                    print(f"  add-ons: {name} is down and cannot start: {error}", flush=True)
                self._failing.add(name)

    def _servers(self) -> list[tuple[str, Callable[[], bool]]]:
        """Each server in the data dir, with what starts it if it is down."""
        found: list[tuple[str, Callable[[], bool]]] = [
            ("the add-ons' PostgreSQL", self.private_postgres.start_if_present)
        ]
        for directory in redis.servers(self.redis_root):
            found.append((f"the Redis add-on {directory.name}", partial(redis.revive, directory)))
        return found

    def stop_all(self) -> None:
        for directory in redis.servers(self.redis_root):
            redis.stop(directory)
        self.private_postgres.stop()

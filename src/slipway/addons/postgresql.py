"""PostgreSQL add-ons: a database and a role of its own per add-on, on the operator's
server or the private cluster. The role owns its database and nothing else; PUBLIC may not
connect to it, so no other add-on's role can."""

from __future__ import annotations

import secrets
from urllib.parse import quote

import psycopg
from psycopg import sql

from slipway.embedded.postgres import Server

# Plans: the connections each role may hold at once.
PLANS = {"dev": 20, "standard": 100, "large": 400}
DEFAULT_PLAN = "dev"
DEFAULT_PORT = 5432


def create(server: Server, name: str, plan: str) -> str:
    """Make role and database ``name``; the URL apps connect with (``postgresql://``:
    SQLAlchemy refuses ``postgres://``)."""
    password = secrets.token_urlsafe(24)
    role = sql.Identifier(name)
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT {}").format(
                role, sql.Literal(password), sql.Literal(PLANS[plan])
            )
        )
        try:
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
            admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(role))
        except psycopg.Error:
            _drop(admin, name)
            raise
    return url(server, name, password)


def url(server: Server, name: str, password: str) -> str:
    return f"postgresql://{name}:{quote(password, safe='')}@{server.host}:{server.port}/{name}"


def destroy(server: Server, name: str) -> None:
    """Drop the database (its open connections are ended) and the role."""
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        _drop(admin, name)


def _drop(admin: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def configured_server(admin_url: str) -> Server:
    """The operator's server, from ``SLIPWAY_POSTGRES_ADMIN_URL``: its host must be one
    apps and the gateway can reach over TCP (not a socket directory)."""
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    host = str(info.get("host") or "")
    if not host or host.startswith("/"):
        raise ValueError(
            "SLIPWAY_POSTGRES_ADMIN_URL must name a TCP host that apps can reach, "
            f"not {host or 'a local socket'}"
        )
    return Server(admin_url=admin_url, host=host, port=int(info.get("port") or DEFAULT_PORT))

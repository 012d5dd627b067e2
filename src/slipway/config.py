"""Settings for every Slipway server role, read from ``SLIPWAY_*`` variables.

One place for the defaults: each ``slipwayd`` subcommand builds a :class:`Settings`, passing
only the flags the user gave, so flags win over the environment, which wins over defaults.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from slipway.builder.repositories import MB, RepoHost, default_data_dir

# The shortest internal secret accepted: shorter ones (an empty variable, a truncated file)
# would let anyone guess their way into /internal.
MIN_SECRET_BYTES = 32


class Settings(BaseSettings):
    """Where a Slipway server keeps its data, listens, and finds Redis and its database."""

    model_config = SettingsConfigDict(env_prefix="SLIPWAY_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(default_data_dir()))
    host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    ssh_port: int = Field(default=2222, ge=1, le=65535)
    # None: `slipwayd up` starts a private redis-server in the data dir.
    redis_url: str | None = None
    # None: a SQLite file in the data dir.
    database_url: str | None = None
    # Shared by the API and the edge services (gateway, repo hosts) for /internal; generated
    # into the data dir on first start when unset.
    internal_secret: SecretStr | None = None
    # The host name users reach the gateway and API by (git remotes); default: `host`, or
    # this machine's name when `host` listens everywhere.
    public_host: str | None = None
    # Where the API says repositories live: "local" (the gateway's own host, the embedded
    # default) or a repo host the gateways reach over SSH, as user@host:port.
    repo_host: str = "local"

    # The API's HTTP server (see slipway.api.http_limits): seconds a connection gets to send
    # its request line and headers (from connecting, or from a kept-alive request's first
    # byte), seconds an idle kept-alive connection stays open, and open connections beyond
    # which new ones are answered 503.
    api_header_timeout: float = Field(default=10.0, gt=0)
    api_keep_alive_timeout: int = Field(default=5, ge=1)
    api_max_connections: int = Field(default=1000, ge=1)  # shared by the workers
    # API processes sharing its socket (a Python process uses one core); default: one per CPU.
    api_workers: int | None = Field(default=None, ge=1, le=64)
    # Addresses or networks of the reverse proxies whose X-Forwarded-For/-Proto the API
    # believes (comma-separated); empty: the peer's address is the client's.
    api_trusted_proxies: Annotated[list[str], NoDecode] = []
    # Serve the OpenAPI schema, /docs and /redoc (they map the whole API for an attacker).
    api_docs: bool = False

    @field_validator("api_trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: Any) -> Any:
        """A comma-separated variable; each an IP address or network, refused if not, as
        uvicorn would otherwise take a typo for a host name that never matches."""
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad item
        return value

    # Limits of the repositories on a repo host (the embedded one is the gateway's own host).
    repo_quota_mb: int = Field(default=RepoHost.quota // MB, ge=1)  # size on disk
    max_push_mb: int = Field(default=RepoHost.max_push // MB, ge=1)  # one push's pack
    git_memory_mb: int = Field(default=RepoHost.git_memory // MB, ge=64)  # each git's heap

    # The router (slipway.router): its port, the domain apps are reached under
    # (APP.DOMAIN), its pool of backends (apps it can route at once), and the seconds an app
    # has to start answering a request (Heroku's 30 s).
    router_port: int = Field(default=8000, ge=1, le=65535)
    apps_domain: str = "localhost"
    router_slots: int = Field(default=500, ge=1, le=20000)
    router_timeout: int = Field(default=30, ge=1)
    # HTTPS (slipway.certs): the router's TLS port; the ACME directory certificates are
    # ordered from (Let's Encrypt's is https://acme-v02.api.letsencrypt.org/directory; unset,
    # domains are served over HTTP only) and the contact address given to it; a CA bundle to
    # trust for that directory (a test server's); whether a domain must resolve before it is
    # ordered; days before expiry a certificate is renewed; seconds between the checks for
    # certificates to order or renew, and before the first retry of a failed one (doubling
    # up to a day).
    router_https_port: int = Field(default=8443, ge=1, le=65535)
    acme_directory: str | None = None
    acme_email: str | None = None
    acme_ca_bundle: Path | None = None
    acme_dns_check: bool = True
    acme_renew_days: float = Field(default=30.0, gt=0)
    acme_check_every: float = Field(default=3600.0, gt=0)
    acme_retry_seconds: float = Field(default=300.0, gt=0)
    # Seconds a new web instance has to listen on its PORT before its deploy fails.
    boot_timeout: float = Field(default=60.0, gt=0)
    # Seconds a release's `release:` command may run before its deploy fails (Heroku: 1 h).
    release_timeout: float = Field(default=3600.0, gt=0)
    # This host's runner: its name (its queue is runner-NAME), and the address the router
    # reaches its instances at.
    runner_name: str = Field(default="local", pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    runner_address: str = "127.0.0.1"
    # The router's directory (its sockets), for a runner whose data dir is not the
    # router's host's (default: DATA_DIR/router).
    router_dir: Path | None = None
    # Each instance's memory limit, by size: S 256 MB, M 512 MB, L 1 GB, XL 2 GB (where the
    # runner can write cgroups).
    instance_size: Literal["S", "M", "L", "XL"] = "M"
    # Seconds between SIGTERM and SIGKILL when an instance stops.
    stop_timeout: float = Field(default=30.0, gt=0)
    # An app's log: the newest lines kept, for at most this many days; each instance may
    # write this many lines a minute (more are dropped, with one notice).
    log_max_lines: int = Field(default=100_000, ge=100)
    log_max_days: float = Field(default=7.0, gt=0)
    log_lines_per_minute: int = Field(default=16_384, ge=10)

    # One-off processes (`slipway run`): the port the runner takes them on (0: any free
    # one, published with its heartbeat), and the seconds one may stay silent, no input
    # and no output, before it is stopped.
    run_port: int = Field(default=0, ge=0, le=65535)
    run_idle_timeout: float = Field(default=3600.0, gt=0)

    # Add-ons: the PostgreSQL server where their databases are made, as a superuser's URL
    # (postgresql://admin:PASSWORD@HOST:5432/postgres); unset, a private cluster in the
    # data dir, started on first use.
    postgres_admin_url: SecretStr | None = None

    # Where edge services (repo hosts, their hooks and workers) reach the API; default: this
    # host's own API.
    api_url: str | None = None

    # Builds (slipway.builder.build): seconds a build may take, the largest slug (compressed),
    # releases whose slugs are kept (older ones are pruned), and where builds run and caches
    # live (default: DATA_DIR/apps; see slipway.host.appuser).
    build_timeout: int = Field(default=15 * 60, ge=10)
    slug_max_mb: int = Field(default=500, ge=1)
    keep_releases: int = Field(default=5, ge=1)
    apps_dir: Path | None = None
    # The Python an app asks for (runtime.txt, .python-version) when the host lacks it:
    # "automatic" downloads it with uv (python-build-standalone; UV_PYTHON_INSTALL_MIRROR
    # points uv at a mirror for hosts without internet), "never" does not. A patch version
    # the host lacks builds with the closest patch of the same minor unless exact_pin is on.
    python_downloads: Literal["automatic", "never"] = "automatic"
    python_exact_pin: bool = False

    @property
    def effective_api_url(self) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.http_port}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'slipway.db'}"

    @property
    def effective_public_host(self) -> str:
        if self.public_host:
            return self.public_host
        return socket.getfqdn() if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104

    @property
    def repositories_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def local_repositories(self) -> RepoHost:
        """This host's repositories, when it holds them (the embedded default)."""
        return RepoHost(
            data_dir=str(self.data_dir.resolve()),
            quota=self.repo_quota_mb * MB,
            max_push=self.max_push_mb * MB,
            git_memory=self.git_memory_mb * MB,
            redis_url=self.redis_url,
            api_url=self.effective_api_url,
        )

    def effective_internal_secret(self) -> str:
        """The configured secret, else the one in the data dir, created (mode 0600) if needed.

        Refused under MIN_SECRET_BYTES: an empty or truncated secret must not open /internal.
        The file appears whole or not at all (written aside, then hard-linked into place,
        which fails if it exists), so processes starting together all read the same one.
        """
        if self.internal_secret is not None:
            secret = self.internal_secret.get_secret_value()
            origin = "SLIPWAY_INTERNAL_SECRET"
        else:
            path = self.data_dir / "internal_secret"
            if not path.exists():
                self._create_secret_file(path)
            secret = path.read_text().strip()
            origin = str(path)
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"{origin} holds {len(secret.encode())} bytes; the internal secret needs at "
                f"least {MIN_SECRET_BYTES} (unset the variable or delete the file to have one "
                "generated, or make one with `openssl rand -base64 32`)"
            )
        return secret

    def _create_secret_file(self, path: Path) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.data_dir, prefix=".internal_secret.")
        try:
            with os.fdopen(descriptor, "w") as file:  # mkstemp made it 0600
                file.write(secrets.token_urlsafe(32) + "\n")
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: theirs is whole
                os.link(temporary, path)
        finally:
            os.unlink(temporary)


def load_settings(**flags: Any) -> Settings:
    """Settings from the environment, overridden by the flags that were given (not None)."""
    return Settings(**{name: value for name, value in flags.items() if value is not None})

"""The gateway's settings, as ``slipwayd gateway`` (and the tests) set them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slipway.builder.repositories import RepoHost
from slipway.gateway.limits import ConnectionLimits


@dataclass
class GatewayConfig:
    api_url: str
    internal_secret: str
    data_dir: Path
    login_grace: float = 30.0  # seconds to authenticate
    handshake_timeout: float = 10.0  # seconds for the version and key exchanges
    max_connections_per_user: int = 50  # authenticated, at once
    changes_interval: float = 0.3  # seconds between reads of the API's access changes
    max_auth_attempts: int = 6  # keys offered per connection (OpenSSH's MaxAuthTries)
    max_sessions: int = 10  # channels open at once per connection
    keepalive_interval: float = 15.0
    proxy_allowed: list[str] = field(default_factory=list)  # addresses or networks
    proxy_header_timeout: float = 5.0
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    allow_chacha20: bool = False  # clients prefer it, but it is half as fast as AES-GCM here
    # SSH upstreams (repo hosts): the platform key, the hosts' keys, the remote command.
    upstream_key: Path | None = None
    upstream_known_hosts: Path | None = None
    upstream_command: str = "slipwayd git-shell"
    # The repositories on this host (the embedded default) and their limits.
    local_repositories: RepoHost | None = None

    @property
    def host_key_dir(self) -> Path:
        return self.data_dir / "gateway"

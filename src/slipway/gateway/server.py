"""The gateway's SSH server: what a connection may do before and after authentication.

Public key only, user `git`; the identity is the key the client *proved* it holds (asyncssh
validates the key it is about to check the signature of last, so the last candidate is the
one bound when authentication completes). Sessions run git commands only; channels other than
sessions and database tunnels, and every global request, are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Awaitable

import asyncssh
from asyncssh.kex import get_kex_algs

from slipway.builder.repositories import RepoHost
from slipway.gateway import hostkeys
from slipway.gateway.algorithms import ACCEPTED_KEYS, KEX_ALGS, MAC_ALGS, SIGNATURE_ALGS
from slipway.gateway.channels import GitProcess, cap_environment, end_session
from slipway.gateway.config import GatewayConfig
from slipway.gateway.control import ControlPlane, ControlPlaneError
from slipway.gateway.limits import source_of
from slipway.gateway.local_upstream import LocalUpstream
from slipway.gateway.metrics import GatewayMetrics
from slipway.gateway.proxy import ProxyError, read_header
from slipway.gateway.revocation import AccessWatcher, Identity, LiveChannel
from slipway.gateway.session import GitSession
from slipway.gateway.tunnels import open_tunnel
from slipway.gateway.upstreams import FAST_CIPHERS, SshUpstream, Upstream
from slipway.graceful import accept_connections
from slipway.ssh.msg_ignore import skip_ignore_packets

log = logging.getLogger("slipway.gateway")

USER = "git"
GOODBYE_SECONDS = 5.0  # for the disconnect message to reach clients, at the end of a drain


class GatewayConnection(asyncssh.SSHServer):
    """One client connection: authentication state and the channels it may open."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.connection: asyncssh.SSHServerConnection | None = None
        self.client = "?"
        self.source = "?"  # what connection limits count by
        self.attempts = 0
        self.candidate: Identity | None = None
        self.identity: Identity | None = None
        self.revoked = False
        self.channels: set[LiveChannel] = set()
        self._handshake_timer: asyncio.TimerHandle | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.connection = conn
        self.gateway.live.add(self)
        _ack_at_once_until_authenticated(conn)
        skip_ignore_packets(conn)
        peer = conn.get_extra_info("peername")
        self.client, self.source = self.gateway.arrivals.pop(peer)
        self.gateway.metrics.open_connections.inc()
        self._handshake_timer = asyncio.get_running_loop().call_later(
            self.gateway.config.handshake_timeout, self._handshake_too_slow
        )

    def _handshake_too_slow(self) -> None:
        self.gateway.metrics.connections.labels("handshake timeout").inc()
        if self.connection is not None:
            self.connection.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self.gateway.live.discard(self)
        self.gateway.check_drained()
        self.gateway.metrics.open_connections.dec()
        if self.identity is None:
            self.gateway.config.limits.done_starting(self.source)
        else:
            self.gateway.per_user[self.identity.user] -= 1
            if self.gateway.per_user[self.identity.user] <= 0:
                del self.gateway.per_user[self.identity.user]

    # -- authentication ------------------------------------------------------------------

    def begin_auth(self, username: str) -> bool:
        if self._handshake_timer is not None:  # the key exchange is over: the grace runs on
            self._handshake_timer.cancel()
        return True  # always required (False would mean "no authentication needed")

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """Called for each key offered, and again just before its signature is checked."""
        self.candidate = None
        self.attempts += 1
        metrics = self.gateway.metrics.auth_failures
        if self.attempts > self.gateway.config.max_auth_attempts:
            metrics.labels("too many attempts").inc()
            if self.connection:
                self.connection.disconnect(
                    asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication attempts"
                )
            return False
        if username != USER:
            metrics.labels("wrong user").inc()
            return False
        if key.algorithm not in ACCEPTED_KEYS:
            metrics.labels("key type").inc()
            return False
        fingerprint = key.get_fingerprint("sha256")
        try:
            owner = await self.gateway.control.key_owner(fingerprint)
        except ControlPlaneError as error:
            log.error("key lookup failed: %s", error)
            metrics.labels("api error").inc()
            return False
        if owner is None:
            metrics.labels("unknown key").inc()
            return False
        self.candidate = Identity(owner.user, fingerprint, self.client)
        return True

    def auth_completed(self) -> None:
        assert self.candidate is not None, "authentication completed without a validated key"
        if self.connection is not None:
            vars(self.connection).pop("data_received", None)  # back to normal ACKs
        self.identity = self.candidate
        self.gateway.config.limits.done_starting(self.source)
        user = self.identity.user
        self.gateway.per_user[user] += 1
        allowed = self.gateway.config.max_connections_per_user
        if self.gateway.per_user[user] > allowed and self.connection is not None:
            self.gateway.metrics.connections.labels("too many per user").inc()
            self.connection.disconnect(
                asyncssh.DISC_TOO_MANY_CONNECTIONS,
                f"{user} has {allowed} connections open already; close some and try again",
            )

    # -- channels ------------------------------------------------------------------------

    def session_requested(
        self,
    ) -> tuple[asyncssh.SSHServerChannel[bytes], asyncssh.SSHServerSession[bytes]] | bool:
        if self.identity is None or self.revoked or self.connection is None:
            return False
        if len(self.channels) >= self.gateway.config.max_sessions:
            return False
        channel = self.connection.create_server_channel()
        cap_environment(channel)
        return channel, GitProcess(self._serve_git)

    async def _serve_git(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        assert self.identity is not None
        live = LiveChannel(end=lambda reason: end_session(process, reason))
        self.channels.add(live)
        try:
            await self.gateway.sessions.serve(process, self.identity, live)
        finally:
            self.channels.discard(live)

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool | Awaitable[asyncssh.SSHTCPSession[bytes]]:
        if self.identity is None or self.revoked:
            return False
        if len(self.channels) >= self.gateway.config.max_sessions:
            return False
        live = LiveChannel(end=lambda reason: None)  # until the tunnel is open
        self.channels.add(live)
        return self._tunnel(dest_host, live)

    async def _tunnel(self, app: str, live: LiveChannel) -> asyncssh.SSHTCPSession[bytes]:
        assert self.identity is not None
        try:
            tunnel = await open_tunnel(self.gateway.control, self.identity.user, app)
        except BaseException:
            self.channels.discard(live)
            raise
        live.app, live.action, live.repository = tunnel.app, "tunnel", tunnel.repository
        live.end = lambda reason: tunnel.close()
        tunnel.on_close = lambda: self.channels.discard(live)
        return tunnel

    def end(self, reason: str) -> None:
        """End this connection and tell the client why.

        A git session gets the words on stderr and exits with 255: ssh prints them, in order,
        before the close. An SSH disconnect alone closes the channels first, and OpenSSH may
        exit on that close without printing the reason. Tunnels, or a connection without
        sessions, get the disconnect.
        """
        sessions = 0
        for channel in list(self.channels):
            channel.end(reason)
            sessions += channel.action != "tunnel"
        tunnels = len(self.channels) - sessions
        if self.connection is not None and (tunnels > 0 or not sessions):
            self.connection.disconnect(asyncssh.DISC_BY_APPLICATION, reason)

    def revoke(self, reason: str) -> None:
        """This connection's key is no longer its user's: end everything, refuse more."""
        self.revoked = True
        self.end(reason)
        if self.connection is not None:  # after the sessions' last words
            asyncio.get_running_loop().call_later(
                GOODBYE_SECONDS, self.connection.disconnect, asyncssh.DISC_BY_APPLICATION, reason
            )

    # Everything else keeps asyncssh's refusal: -R forwards, unix sockets, tun/tap, x11,
    # agent forwarding (disabled in the options), and unknown global requests.


def _ack_at_once_until_authenticated(conn: asyncssh.SSHServerConnection) -> None:
    """ACK every segment at once during the handshake.

    OpenSSH's client sends its NEWKEYS and SERVICE_REQUEST as two small writes with Nagle on;
    the second waits for the first's ACK, which Linux delays by 40 ms: a third of a `git
    ls-remote`. TCP_QUICKACK is not sticky, so it is set again on every read until
    authentication completes.
    """
    sock = conn.get_extra_info("socket")
    if sock is None or not hasattr(socket, "TCP_QUICKACK"):
        return
    receive = conn.data_received

    def data_received(data: bytes, datatype: object = None) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        receive(data)

    conn.data_received = data_received  # type: ignore[method-assign]


def _address(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class Gateway:
    """Accepts connections on a listening socket and runs an SSH server on each."""

    def __init__(self, config: GatewayConfig, metrics: GatewayMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or GatewayMetrics()
        self.control = ControlPlane(config.api_url, config.internal_secret)
        self.sessions = GitSession(self.control, self.upstream_for, self.metrics)
        self.watcher = AccessWatcher(self.control, lambda: self.live, config.changes_interval)
        # client "address:port" and limits source of connections accepted, not yet set up
        self.arrivals: dict[object, tuple[str, str]] = {}
        self.per_user: Counter[str] = Counter()  # authenticated connections
        self._local = LocalUpstream(
            config.local_repositories or RepoHost(str(config.data_dir.resolve()))
        )
        self._remote: dict[str, SshUpstream] = {}
        self._proxy_networks = [ipaddress.ip_network(n, strict=False) for n in config.proxy_allowed]
        self._connections: set[asyncio.Task[None]] = set()
        self.live: set[GatewayConnection] = set()  # connections past the TCP accept
        self._drained = asyncio.Event()  # set when the last connection ends
        ciphers = [
            *FAST_CIPHERS,
            *(["chacha20-poly1305@openssh.com"] if config.allow_chacha20 else []),
        ]
        self.options = asyncssh.SSHServerConnectionOptions(
            server_host_keys=hostkeys.keypairs(config.host_key_dir),
            server_factory=lambda: GatewayConnection(self),
            encoding=None,
            line_editor=False,
            allow_pty=False,
            x11_forwarding=False,
            agent_forwarding=False,
            login_timeout=config.login_grace,
            keepalive_interval=config.keepalive_interval,
            keepalive_count_max=4,
            kex_algs=[alg for alg in KEX_ALGS if alg.encode() in get_kex_algs()],
            encryption_algs=ciphers,
            mac_algs=MAC_ALGS,
            signature_algs=SIGNATURE_ALGS,
            compression_algs=["none"],
            kbdint_auth=False,
            # No DNS on each connection: asyncssh would look up GSS and client host names.
            gss_host=None,
            rdns_lookup=False,
            password_auth=False,
        )

    def upstream_for(self, host: str) -> Upstream:
        if host == "local":
            return self._local
        if host not in self._remote:
            self._remote[host] = self._ssh_upstream(host)
        return self._remote[host]

    def _ssh_upstream(self, target: str) -> SshUpstream:
        if self.config.upstream_key is None or self.config.upstream_known_hosts is None:
            raise ValueError("repo hosts need an upstream key and known hosts")
        user, _, host_port = target.rpartition("@")
        host, _, port = host_port.rpartition(":") if ":" in host_port else (host_port, "", "22")
        return SshUpstream(
            host=host,
            port=int(port),
            username=user or USER,
            client_key=asyncssh.read_private_key(str(self.config.upstream_key)),
            known_hosts=str(self.config.upstream_known_hosts),
            command_prefix=self.config.upstream_command,
        )

    async def serve(self, listener: socket.socket, ready: asyncio.Event | None = None) -> None:
        """Accept on ``listener`` until cancelled; follow access changes meanwhile."""
        watching = asyncio.create_task(self.watcher.run())
        if ready:
            ready.set()
        try:
            await accept_connections(listener, self._start)
        finally:
            watching.cancel()

    def _start(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(sock, peer))
        self._connections.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._connections.discard(task)
        self.check_drained()

    def check_drained(self) -> None:
        if not self.live and not self._connections:
            self._drained.set()

    async def _handle(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        address, client = peer[0], _address(peer)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._from_balancer(peer[0]):
                announced = await asyncio.wait_for(
                    read_header(sock), self.config.proxy_header_timeout
                )
                if announced:
                    address, client = announced[0], f"{announced[0]}:{announced[1]}"
        except (ProxyError, TimeoutError, OSError) as error:
            self.metrics.connections.labels("bad proxy header").inc()
            log.warning("dropping %s: %s", peer[0], error)
            sock.close()
            return
        source = source_of(address)
        refused = self.config.limits.admit(source)
        if refused:
            self.metrics.connections.labels(refused).inc()
            sock.close()
            return
        self.arrivals[peer] = (client, source)  # GatewayConnection takes it, and the count
        try:
            await asyncssh.run_server(sock, options=self.options)
            self.metrics.connections.labels("authenticated").inc()
        except (OSError, asyncssh.Error) as error:
            self.metrics.connections.labels("not authenticated").inc()
            log.debug("connection from %s ended before authentication: %s", client, error)
        finally:
            if self.arrivals.pop(peer, None) is not None:  # never reached the SSH server
                self.config.limits.done_starting(source)

    def _from_balancer(self, address: str) -> bool:
        if not self._proxy_networks:
            return False
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in self._proxy_networks)

    async def drain(self, max_seconds: float) -> None:
        """Let open connections finish, up to ``max_seconds``; then end them with a word.

        That includes connections accepted but still in their handshake: the client of one
        sees nothing of the upgrade either."""
        if not (self.live or self._connections):
            return
        log.info("draining %d connections (up to %.0f s)", len(self.live), max_seconds)
        self._drained.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), max_seconds)
        if not self.live:
            return
        log.warning("ending %d sessions still open after %.0f s", len(self.live), max_seconds)
        for connection in list(self.live):
            connection.end("the gateway is restarting and this session ran too long; try again")
        with contextlib.suppress(TimeoutError):  # until the clients have the word
            await asyncio.wait_for(self._drained.wait(), GOODBYE_SECONDS)

    async def close(self) -> None:
        for task in list(self._connections):
            task.cancel()
        for upstream in self._remote.values():
            await upstream.close()
        await self.control.aclose()

"""One git session: parse the exec string, ask the API, run the canonical command upstream,
pipe both ways with backpressure, forward the exit; one audit line at the end."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import asyncssh

from slipway.gateway.commands import Refused, git_protocol, parse_command
from slipway.gateway.control import ControlPlane, ControlPlaneError
from slipway.gateway.metrics import GatewayMetrics
from slipway.gateway.revocation import Identity, LiveChannel
from slipway.gateway.upstreams import CHUNK, Exit, Running, Upstream

audit = logging.getLogger("slipway.gateway.audit")
log = logging.getLogger("slipway.gateway")


@dataclass
class Record:
    identity: Identity
    started: float = field(default_factory=time.monotonic)
    app: str | None = None
    verb: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    exit: Exit = field(default_factory=Exit)
    outcome: str = "error"


def denied(app: str) -> str:
    # The same words whether the app is missing or forbidden: names do not leak.
    return f"slipway: {app}.git does not exist, or you have no access to it"


class GitSession:
    def __init__(
        self,
        control: ControlPlane,
        upstream_for: Callable[[str], Upstream],
        metrics: GatewayMetrics,
    ) -> None:
        self.control = control
        self.upstream_for = upstream_for
        self.metrics = metrics

    async def serve(
        self, process: asyncssh.SSHServerProcess[bytes], identity: Identity, live: LiveChannel
    ) -> None:
        """Serve one exec; ``live`` records what it was allowed, for revocation."""
        record = Record(identity)
        try:
            await self._serve(process, record, live)
        finally:
            self._audit(record)

    async def _serve(
        self, process: asyncssh.SSHServerProcess[bytes], record: Record, live: LiveChannel
    ) -> None:
        try:
            command = parse_command(process.command)
        except Refused as refusal:
            record.outcome = "refused"
            await _fail(process, str(refusal))
            return
        record.app, record.verb = command.app, command.verb
        try:
            grant = await self.control.authorize(record.identity.user, command.app, command.action)
        except ControlPlaneError as error:
            log.error("authorisation failed: %s", error)
            record.outcome = "api error"
            await _fail(
                process,
                "slipway: the platform cannot check access right now; try again in a moment",
            )
            return
        if grant is None or grant.repository_host is None or grant.repository_id is None:
            record.outcome = "denied"
            await _fail(process, denied(command.app))
            return
        live.app, live.action, live.repository = command.app, command.action, grant.repository_id
        try:
            running = await self.upstream_for(grant.repository_host).start(
                replace(command, user=record.identity.user),
                grant.repository_id,
                git_protocol(process.env.get("GIT_PROTOCOL")),
            )
        except (OSError, asyncssh.Error, ValueError) as error:
            log.error("cannot start %s on %s: %s", command.verb, grant.repository_host, error)
            record.outcome = "upstream error"
            await _fail(
                process, "slipway: the repository host is unreachable; try again in a moment"
            )
            return
        record.outcome = await self._pipe(process, running, record)

    async def _pipe(
        self, process: asyncssh.SSHServerProcess[bytes], running: Running, record: Record
    ) -> str:
        async def inbound() -> None:
            try:
                while data := await process.stdin.read(CHUNK):
                    record.bytes_in += len(data)
                    await running.write(data)
            except (OSError, asyncssh.Error):
                pass  # the command stopped reading, or the client went away
            finally:
                running.write_eof()

        def sent(count: int) -> None:
            record.bytes_out += count

        feeding = asyncio.ensure_future(inbound())
        output = asyncio.ensure_future(running.send_output(process.stdout, process.stderr, sent))
        closed = asyncio.ensure_future(process.wait_closed())
        await asyncio.wait([output, closed], return_when=asyncio.FIRST_COMPLETED)
        disconnected = closed.done() or (output.done() and output.exception() is not None)
        if disconnected:
            running.kill()  # nobody is there to read it: stop the command
            output.cancel()
        record.exit = await running.wait()
        feeding.cancel()
        closed.cancel()
        await asyncio.gather(feeding, output, closed, return_exceptions=True)
        if disconnected:
            return "client disconnected"
        process.stdout.write_eof()
        if record.exit.signal:
            process.exit_with_signal(record.exit.signal)
        else:
            process.exit(record.exit.status if record.exit.status is not None else 255)
        return "ok" if record.exit.status == 0 else "failed"

    def _audit(self, record: Record) -> None:
        duration = time.monotonic() - record.started
        verb = record.verb or "none"
        self.metrics.sessions.labels(verb, record.outcome).inc()
        self.metrics.durations.labels(verb).observe(duration)
        self.metrics.bytes.labels("in").inc(record.bytes_in)
        self.metrics.bytes.labels("out").inc(record.bytes_out)
        fields: dict[str, Any] = {
            "user": record.identity.user,
            "fingerprint": record.identity.fingerprint,
            "app": record.app,
            "verb": record.verb,
            "bytes_in": record.bytes_in,
            "bytes_out": record.bytes_out,
            "duration_ms": round(duration * 1000, 1),
            "exit_status": record.exit.status,
            "exit_signal": record.exit.signal,
            "client": record.identity.client,
            "outcome": record.outcome,
        }
        audit.info("session", extra=fields)


async def _fail(process: asyncssh.SSHServerProcess[bytes], line: str) -> None:
    """One clear line on stderr and exit status 1."""
    try:
        process.stderr.write(line.encode() + b"\n")
        process.exit(1)
    except (OSError, asyncssh.Error):
        pass

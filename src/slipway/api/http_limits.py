"""uvicorn's httptools protocol with the limits httptools and uvicorn leave out.

httptools buffers a request line and headers of any size, and uvicorn starts no timer until
a first response is sent: a few clients could fill memory with endless headers, or hold
connections forever by sending nothing or a byte at a time. This protocol counts the bytes of
each request head before httptools sees them, gives the head a deadline, and refuses
connections beyond a cap, each with an HTTP answer. Idle kept-alive connections stay
uvicorn's (``timeout_keep_alive``).
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

MAX_REQUEST_TARGET = 8 * 1024  # bytes of the URL in the request line, else 414
MAX_HEAD = 64 * 1024  # bytes of the request line and headers together, else 431
# Seconds a refused connection's input is read and dropped after the answer: closing with
# unread input makes the kernel send a reset, which can destroy the answer before it is read.
LINGER = 2.0


@dataclass(frozen=True)
class HttpLimits:
    header_timeout: float  # seconds to send a request head, from connecting or its first byte
    max_connections: int  # open connections; the ones beyond are answered 503
    max_request_target: int = MAX_REQUEST_TARGET
    max_head: int = MAX_HEAD


class _TargetTooLong(Exception):
    """Raised from the parser's URL callback to stop parsing at once."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """One connection. Between requests it is in a head (bytes counted, deadline armed on
    the head's first byte, or at connect for the first request) until the headers are
    complete, then in a body, which uvicorn's flow control and BodyLimit bound."""

    limits: ClassVar[HttpLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.head_bytes: int | None = 0  # None while in a body
        self.head_deadline: TimerHandle | None = None
        self.refused = False  # answered and closing: input is dropped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.logger.warning("Over %d connections: refused.", self.limits.max_connections)
            self.refuse(503, "Too many connections")
        else:
            self.arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self._unset_keepalive_if_required()
        while data and self.reading():
            if self.head_bytes is None:
                piece, data = data, b""
            else:
                room = self.limits.max_head - self.head_bytes
                if room == 0:
                    self.refuse(431, "Request Header Fields Too Large")
                    return
                # The head may end inside the piece; what follows it (a body, or a pipelined
                # request's head) is then left uncounted: at most one MAX_HEAD too little.
                piece, data = data[:room], data[room:]
                self.head_bytes += len(piece)
            self.feed(piece)
        if self.head_bytes and self.head_deadline is None and self.reading():
            self.arm_head_deadline()  # a kept-alive connection's next request has begun

    def reading(self) -> bool:
        """Neither answered with a refusal nor closing: input is still parsed."""
        return not self.refused and not self.transport.is_closing()

    def feed(self, data: bytes) -> None:
        """uvicorn's parsing and error handling, plus the 414 raised by on_url."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _TargetTooLong):
                self.refuse(414, "URI Too Long")
            else:
                self.bad_request()
        except httptools.HttpParserError:
            self.bad_request()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def bad_request(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_request_target:
            raise _TargetTooLong

    def on_headers_complete(self) -> None:
        self.head_bytes = None
        self.cancel_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.head_bytes = 0

    def head_timed_out(self) -> None:
        """Close; with a 408 if a request had begun and no response is under way."""
        self.head_deadline = None
        responding = self.cycle is not None and not self.cycle.response_complete
        if self.head_bytes and not responding:
            self.refuse(408, "Request Timeout", linger=False)
        else:
            self.transport.close()

    def arm_head_deadline(self) -> None:
        self.head_deadline = self.loop.call_later(self.limits.header_timeout, self.head_timed_out)

    def cancel_head_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def refuse(self, status: int, message: str, linger: bool = True) -> None:
        """Answer `status` and close, first reading and dropping input for LINGER seconds
        (or until the client closes) when `linger`, so that the client reads the answer."""
        self.refused = True
        self.cancel_head_deadline()
        body = message.encode()
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        if linger and self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER, self.transport.close)
        else:
            self.transport.close()


def limited_protocol(limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=``, bound to `limits`."""

    class Bound(LimitedHttpToolsProtocol):
        pass

    Bound.limits = limits
    return Bound

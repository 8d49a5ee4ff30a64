"""The HTTP server's connection rules: listening socket, read timeouts, concise errors.

aiohttp closes an idle keep-alive connection (and one that never sends a
request) after ``keepalive_timeout``; on top of that a request whose headers
started arriving must complete them within ``PERSONA_HTTP_HEADER_TIMEOUT_S``
(a slow-loris client otherwise holds a connection as long as it trickles
bytes). Body reads are bounded where bodies are read (``http/body.py``).

The listening socket is bound here, before anything is announced, so a port
that is taken stops the service with a clear error instead of a process that
says it serves and does not.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from service.http.middleware import SERVER
from service.http.shed_lane import LANE, ShedLane

rejections = logging.getLogger("persona.rejected")


class PortUnavailable(OSError):
    """The address cannot be listened on; the message says why."""


def listen(host: str, port: int, reuse_port: bool, backlog: int = 2048) -> socket.socket:
    """A bound, listening, non-blocking socket (``PortUnavailable`` when taken or refused)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortUnavailable(f"cannot resolve {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortUnavailable(
                f"{host}:{port} is already in use by another process; stop it or choose "
                "another PERSONA_PORT"
            ) from None
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class _Handler(RequestHandler):
    """aiohttp's connection handler with a header read timeout."""

    __slots__ = ("_header_timeout_s", "_header_timer", "_lane")

    def __init__(
        self,
        manager: web.Server,
        *,
        header_timeout_s: float,
        lane: ShedLane | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None
        self._lane = lane

    def data_received(self, data: bytes) -> None:
        lane = self._lane
        if (
            lane is not None
            and lane.overload.shedding()
            and self._header_timer is None  # no partial request waits in the parser
            and not self._request_in_progress
            and not self._messages
            and not self._close
            and not self._force_close
            and self.transport is not None
        ):
            answer = lane.answer(data)
            if answer is not None:
                self.transport.write(answer)
                self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
                return
        super().data_received(data)
        if self._messages:  # a request's headers are complete
            self._stop_header_timer()
        elif (
            data
            and self._header_timer is None
            and not self._request_in_progress
            and not self._force_close
        ):
            self._header_timer = self._loop.call_later(self._header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._messages and not self._request_in_progress:
            rejections.info(
                "closed a connection whose request headers took longer than %g s",
                self._header_timeout_s,
            )
            self.force_close()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request its parser refused, in the service's own form:
        a JSON error, the generic Server header, no detail of the server's software."""
        response = super().handle_error(request, status, exc, message)
        if isinstance(response, web.Response):
            code = "bad_request" if status < 500 else "internal_error"
            text = "malformed HTTP request" if status < 500 else "internal error"
            response.body = orjson.dumps({"error": code, "message": text})
            response.content_type = "application/json"
        response.headers["Server"] = SERVER
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


class _Server(web.Server):
    """Creates :class:`_Handler` connections (set by :class:`Runner`)."""

    header_timeout_s = 10.0
    lane: ShedLane | None = None

    def __call__(self) -> RequestHandler:
        return _Handler(
            self,
            loop=self._loop,
            header_timeout_s=self.header_timeout_s,
            lane=self.lane,
            **self._kwargs,
        )


LINGER_S = 2.0
"""After answering a request whose body was not read to its end, how long the rest may
still arrive before the connection closes (aiohttp's default is 10 s)."""


class Runner(web.AppRunner):
    """An AppRunner whose connections have a header read timeout."""

    def __init__(self, app: web.Application, *, header_timeout_s: float, **kwargs: Any) -> None:
        kwargs.setdefault("lingering_time", LINGER_S)
        super().__init__(app, **kwargs)
        self._header_timeout_s = header_timeout_s

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # the same object with the connection factory above (Server has no slots)
        server.__class__ = _Server
        server.header_timeout_s = self._header_timeout_s  # type: ignore[attr-defined]
        server.lane = self.app.get(LANE)  # type: ignore[attr-defined]
        return server


class _MalformedRequests(logging.Filter):
    """One line instead of a traceback for requests aiohttp's parser refuses (400), and for
    a body that could not be decoded (the handler answered 400; aiohttp then closes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            rejections.info("malformed HTTP request -> %d %s", exc.code, type(exc).__name__)
            return False
        if isinstance(exc, RequestPayloadError):
            rejections.info("unreadable request body: connection closed")
            return False
        return True


def quiet_malformed_requests() -> None:
    """Install the filter on aiohttp's server logger (once per process)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _MalformedRequests) for f in logger.filters):
        logger.addFilter(_MalformedRequests())

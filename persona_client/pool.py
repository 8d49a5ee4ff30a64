"""Keep-alive HTTP/1.1 connections for the sync client, shared by threads (stdlib only).

A thread takes an idle connection (or opens one), makes its call and puts it
back, so concurrent calls never share a socket and sequential calls reuse one.
A connection the server closed while it sat idle is noticed before use, or,
if it closes just as the request leaves, replaced and the request sent once
more on a fresh one.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import time
from dataclasses import dataclass

from persona_client.wire import Config, Failure, Outcome, Request, Response

# what a request on a reused connection raises when the server had closed it
_CLOSED_BY_SERVER = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


@dataclass(frozen=True, slots=True)
class _Answer:
    response: Response
    reusable: bool


class ConnectionPool:
    """Connections to the service's origin: at most ``max_idle`` kept open between calls."""

    def __init__(self, config: Config, max_idle: int = 16) -> None:
        self._config = config
        self._max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._tls = ssl.create_default_context() if config.scheme == "https" else None

    def send(self, request: Request, timeout_s: float) -> Outcome:
        """Make ``request`` within ``timeout_s``; never raises for the network or the server."""
        deadline = time.monotonic() + timeout_s
        conn = self._take()
        try:
            try:
                if conn is None:
                    conn = self._open(deadline)
                    answer = _exchange(conn, request, deadline)
                else:
                    try:
                        answer = _exchange(conn, request, deadline)
                    except _CLOSED_BY_SERVER:
                        conn.close()
                        conn = self._open(deadline)
                        answer = _exchange(conn, request, deadline)
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
        except TimeoutError:
            return Failure("client_timeout", f"no answer within {timeout_s:g} s")
        except OSError as exc:
            return Failure("client_unavailable", str(exc) or type(exc).__name__)
        except http.client.HTTPException as exc:
            return Failure("client_bad_answer", f"not an HTTP answer ({type(exc).__name__})")
        self._give_back(conn, answer.reusable)
        return answer.response

    def close(self) -> None:
        """Close the idle connections; those in use close when their call ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the Persona client is closed")
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if not _dropped(conn):
                return conn
            conn.close()

    def _give_back(self, conn: http.client.HTTPConnection, reusable: bool) -> None:
        with self._lock:
            if reusable and not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _open(self, deadline: float) -> http.client.HTTPConnection:
        config = self._config
        remaining = _remaining(deadline)
        conn: http.client.HTTPConnection
        if self._tls is not None:
            conn = http.client.HTTPSConnection(
                config.host, config.port, timeout=remaining, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(config.host, config.port, timeout=remaining)
        try:
            conn.connect()
        except BaseException:
            conn.close()
            raise
        return conn


def _exchange(conn: http.client.HTTPConnection, request: Request, deadline: float) -> _Answer:
    # the socket's timeout is set before each step, so the steps share one budget
    _arm(conn, deadline)
    conn.request("POST", request.path, body=request.body, headers=dict(request.headers))
    _arm(conn, deadline)
    response = conn.getresponse()
    _arm(conn, deadline)
    body = response.read()
    retry_after = response.getheader("Retry-After")
    return _Answer(Response(response.status, body, retry_after), not response.will_close)


def _arm(conn: http.client.HTTPConnection, deadline: float) -> None:
    if conn.sock is None:
        raise ConnectionResetError("the connection is closed")
    conn.sock.settimeout(_remaining(deadline))


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the call's time is up")
    return left


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the server (it reads as ready: EOF)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True

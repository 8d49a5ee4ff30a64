"""The cheapest possible answer while overloaded: decisions shed at the connection.

When the event loop lags past its budget (service/overload.py), shedding in
the handler still pays for aiohttp's whole request path (a task, the request
and response objects, the middleware), about a third of what a personalized
decision costs, and at twice the saturation rate that leaves too little CPU
for the decisions that can still be personalized. So while the loop lags,
the connection itself answers a plain ``POST /v1/decide`` that arrived whole
in one read: the same validation and trust rules (:func:`checked`), the
defaults (:func:`shed_answer`), the service's headers, written straight to
the transport. Anything else (a partial request, pipelining, a body encoding,
a refused request, any other route) takes the normal path, which sheds too.
"""

from __future__ import annotations

import time
from time import perf_counter
from wsgiref.handlers import format_date_time

import msgspec
from aiohttp import web

from service.decide.engine import DecisionEngine
from service.errors import ApiError
from service.http.decide import checked, shed_answer
from service.http.schemas import DECIDE_DECODER
from service.identity.customer import CustomerKeys
from service.identity.trust import ApiKeys, InvalidApiKey
from service.logs import request_id
from service.metrics import Metrics
from service.overload import Overload

REQUEST_LINE = b"POST /v1/decide HTTP/1.1\r\n"
ENDPOINT = "/v1/decide"
_REFUSED = ("transfer-encoding", "expect", "upgrade")


class ShedLane:
    """Answers whole ``POST /v1/decide`` requests at the connection while shedding."""

    def __init__(
        self,
        overload: Overload,
        engine: DecisionEngine,
        metrics: Metrics,
        keys: ApiKeys,
        customer_keys: CustomerKeys,
        max_placements: int,
        cors_origins: tuple[str, ...],
    ) -> None:
        self.overload = overload
        self.engine = engine
        self.metrics = metrics
        self.keys = keys
        self.customer_keys = customer_keys
        self.max_placements = max_placements
        self.cors_origins = frozenset(cors_origins)
        self._date = (0, "")

    def answer(self, data: bytes) -> bytes | None:
        """The whole HTTP response for ``data`` if this lane may answer it, else ``None``."""
        if not data.startswith(REQUEST_LINE):
            return None
        started = perf_counter()
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None
        headers: dict[str, str] = {}
        for line in data[len(REQUEST_LINE) : end].decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep:
                return None
            headers[name.strip().lower()] = value.strip()
        if any(h in headers for h in _REFUSED) or headers.get("connection", "").lower() == "close":
            return None
        if headers.get("content-encoding", "identity").lower() not in ("", "identity"):
            return None
        body = data[end + 4 :]
        if headers.get("content-length") != str(len(body)) or not body:
            return None
        try:
            trust = self.keys.trust(headers.get("authorization"))
            parsed = DECIDE_DECODER.decode(body)
            named = checked(parsed, trust, self.customer_keys, self.max_placements)
        except (InvalidApiKey, ApiError, msgspec.ValidationError, msgspec.DecodeError):
            return None  # the normal path answers it with the right error
        payload = shed_answer(self.engine, parsed, trust, named)
        head = [
            "HTTP/1.1 200 OK",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(payload)}",
            "Cache-Control: no-store",
            f"Date: {self._http_date()}",
            "Vary: Origin",
            "Server: persona",
            "X-Content-Type-Options: nosniff",
            f"X-Request-Id: {request_id(headers.get('x-request-id'))}",
        ]
        origin = headers.get("origin")
        if origin is not None and origin in self.cors_origins:
            head += [
                f"Access-Control-Allow-Origin: {origin}",
                "Access-Control-Allow-Credentials: true",
                "Access-Control-Expose-Headers: X-Request-Id",
            ]
        self.metrics.shed_count["decide"].inc()
        self.metrics.observe_request(ENDPOINT, 200, perf_counter() - started)
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload

    def _http_date(self) -> str:
        """The Date header's value, computed once a second."""
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, format_date_time(now))
        return self._date[1]


LANE = web.AppKey("shed_lane", ShedLane)
"""The app's lane, built with its decision engine; the connections find it through the runner."""

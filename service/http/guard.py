"""The trust and abuse checks every public route makes before it does any work.

``caller`` tells a browser from the site's server (API key); ``admit`` applies
the rate limits to browsers, per client address and per visitor (the site's
server is trusted with its key and speaks for many visitors at its own pace).
A refused request is a 429 with ``Retry-After``, counted in
``persona_rate_limited_total``.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from aiohttp import web

from service.errors import ApiError
from service.identity.trust import ApiKeys, InvalidApiKey, Trust
from service.metrics import Metrics
from service.ratelimit import Limiter, Rule, per_second
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class Rules:
    """The configured limits."""

    decide_client: Rule
    decide_visitor: Rule
    events_client: Rule
    events_visitor: Rule
    admin_failures: Rule

    @classmethod
    def from_settings(cls, s: Settings) -> Rules:
        """The limits as the settings give them (a rate of 0 disables one)."""
        return cls(
            decide_client=per_second("decide:client", s.rate_decide_client_per_s),
            decide_visitor=per_second("decide:visitor", s.rate_decide_visitor_per_s),
            events_client=per_second("events:client", s.rate_events_client_per_s),
            events_visitor=per_second("events:visitor", s.rate_events_visitor_per_s),
            # failures per minute, a minute's worth at once
            admin_failures=per_second(
                "admin:failures", s.rate_admin_failures_per_min / 60.0, burst_s=60.0
            ),
        )


def client_address(request: web.Request, forwarded_hops: int) -> str:
    """The client's address as a rate-limit key (an IPv6 client counts as its /64).

    With ``forwarded_hops`` = N reverse proxies in front, the client is the
    N-th address from the right of ``X-Forwarded-For`` (each proxy appends the
    address it saw); without proxies it is the connection's peer.
    """
    address = request.remote or ""
    if forwarded_hops:
        chain = [
            part.strip()
            for header in request.headers.getall("X-Forwarded-For", [])
            for part in header.split(",")
            if part.strip()
        ]
        if chain:
            address = chain[-forwarded_hops] if len(chain) >= forwarded_hops else chain[0]
    if ":" not in address:
        return address[:64]
    try:
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False).network_address)
    except ValueError:
        return address[:64]


class Guard:
    """Caller trust and rate limits of the public API."""

    def __init__(
        self, keys: ApiKeys, limiter: Limiter, rules: Rules, hops: int, metrics: Metrics
    ) -> None:
        self.keys = keys
        self.limiter = limiter
        self.rules = rules
        self.hops = hops
        self.metrics = metrics

    def caller(self, request: web.Request) -> Trust:
        """The caller's trust; a presented but wrong API key is a 401."""
        try:
            return self.keys.trust(request.headers.get("Authorization"))
        except InvalidApiKey as exc:
            self.metrics.rate_limited.labels(_endpoint(request), "bad_api_key").inc()
            raise ApiError(
                401, "unauthorized", str(exc), {"WWW-Authenticate": 'Bearer realm="persona"'}
            ) from None

    def admit_client(self, request: web.Request, trust: Trust, rule: Rule) -> None:
        """Count the request against its client's limit (browsers only)."""
        if trust.server:
            return
        self._admit(request, rule, client_address(request, self.hops), "client")

    def admit_visitor(
        self, request: web.Request, trust: Trust, visitor_id: str | None, rule: Rule
    ) -> None:
        """Count a browser's request against its visitor's limit."""
        if visitor_id is not None and not trust.server:
            self._admit(request, rule, visitor_id, "visitor")

    def _admit(self, request: web.Request, rule: Rule, key: str, scope: str) -> None:
        wait = self.limiter.retry_after(rule, key)
        if wait > 0:
            self.metrics.rate_limited.labels(_endpoint(request), scope).inc()
            raise too_many(wait)

    def admin_blocked(self, request: web.Request) -> None:
        """429 when this client failed admin authentication too often recently."""
        wait = self.limiter.blocked_for(
            self.rules.admin_failures, client_address(request, self.hops)
        )
        if wait > 0:
            self.metrics.rate_limited.labels("admin", "auth_failures").inc()
            raise too_many(wait)

    def admin_failed(self, request: web.Request) -> None:
        """Count one failed admin authentication of this client."""
        self.metrics.admin_auth_failures.inc()
        self.limiter.retry_after(self.rules.admin_failures, client_address(request, self.hops))


def too_many(wait_s: float) -> ApiError:
    """The 429 for a request that must wait ``wait_s`` seconds."""
    seconds = max(1, math.ceil(wait_s))
    return ApiError(
        429,
        "rate_limited",
        f"too many requests; retry after {seconds} s",
        {"Retry-After": str(seconds)},
    )


def _endpoint(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "other"


GUARD = web.AppKey("guard", Guard)

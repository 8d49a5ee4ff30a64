"""Where Redis is and how to reach it, parsed once from ``PERSONA_REDIS_URL``.

Every client the service opens — the pipelined hot-path connections and the
redis-py clients — is built from one :class:`RedisAddress`, so a password, an
ACL user, a database number or a TLS option in the URL reaches all of them.

Accepted forms::

    redis://[[user]:password@]host[:port][/db]
    rediss://[[user]:password@]host[:port][/db]?ssl_ca_certs=/ca.pem&ssl_certfile=...
    unix:///path/to/redis.sock?db=0

TLS query options (``rediss://`` only): ``ssl_ca_certs`` (CA bundle file),
``ssl_ca_path`` (CA folder), ``ssl_certfile`` and ``ssl_keyfile`` (client
certificate), ``ssl_cert_reqs`` (``required``, the default, ``optional`` or
``none``), ``ssl_check_hostname`` (``true``, the default, or ``false``).
Anything else in the query is refused, so a misspelt option is an error at
start rather than a silently unverified connection.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

_TLS_OPTIONS = (
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
)
_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """How to verify the server and present a client certificate."""

    ca_certs: str | None = None
    ca_path: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    cert_reqs: str = "required"
    check_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        """An SSL context that enforces these options."""
        ctx = ssl.create_default_context(cafile=self.ca_certs, capath=self.ca_path)
        if self.certfile is not None:
            ctx.load_cert_chain(self.certfile, self.keyfile)
        verify = _CERT_REQS[self.cert_reqs]
        ctx.check_hostname = self.check_hostname and verify != ssl.CERT_NONE
        ctx.verify_mode = verify
        return ctx


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """A parsed Redis URL."""

    host: str | None
    port: int
    path: str | None
    db: int
    username: str | None
    password: str | None
    tls: TlsOptions | None

    def redacted(self) -> str:
        """The address for logs and messages: never the password."""
        scheme = "unix" if self.path else ("rediss" if self.tls else "redis")
        user = f"{self.username or ''}:***@" if self.password else ""
        where = self.path or f"{self.host}:{self.port}"
        return f"{scheme}://{user}{where}/{self.db}"


def parse_redis_url(url: str) -> RedisAddress:
    """Parse a Redis URL; ``ValueError`` says what is wrong with it."""
    u = urlparse(url.strip())
    if u.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must start with redis://, rediss:// or unix://")
    query: dict[str, str] = {}
    for name, value in parse_qsl(u.query, keep_blank_values=True):
        if name in query:
            raise ValueError(f"query option {name!r} is given twice")
        query[name] = value
    db_raw = query.pop("db", None)
    if u.scheme != "unix" and u.path not in ("", "/"):
        if db_raw is not None:
            raise ValueError("give the database either as the path or as ?db=, not both")
        db_raw = u.path.lstrip("/")
    try:
        db = int(db_raw) if db_raw else 0
    except ValueError:
        raise ValueError(f"database {db_raw!r} is not a number") from None
    if not 0 <= db <= 100_000:
        raise ValueError(f"database {db} is out of range")
    tls_given = {k: query.pop(k) for k in _TLS_OPTIONS if k in query}
    if query:
        known = ", ".join(("db", *_TLS_OPTIONS))
        raise ValueError(f"unknown query options {sorted(query)} (known: {known})")
    tls = None
    if u.scheme == "rediss":
        tls = _tls(tls_given)
    elif tls_given:
        raise ValueError(f"TLS options {sorted(tls_given)} need a rediss:// URL")
    try:
        port = u.port or 6379
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    user = unquote(u.username) if u.username else None
    password = unquote(u.password) if u.password is not None else None
    if u.scheme == "unix":
        if not u.path:
            raise ValueError("unix:// needs a socket path, e.g. unix:///run/redis.sock")
        return RedisAddress(None, 0, unquote(u.path), db, user, password, None)
    return RedisAddress(u.hostname or "127.0.0.1", port, None, db, user, password, tls)


def _tls(given: dict[str, str]) -> TlsOptions:
    reqs = given.get("ssl_cert_reqs", "required").lower()
    if reqs not in _CERT_REQS:
        raise ValueError("ssl_cert_reqs must be required, optional or none")
    check = given.get("ssl_check_hostname", "true").lower()
    if check not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("ssl_check_hostname must be true or false")
    if "ssl_keyfile" in given and "ssl_certfile" not in given:
        raise ValueError("ssl_keyfile needs ssl_certfile")
    return TlsOptions(
        ca_certs=given.get("ssl_ca_certs") or None,
        ca_path=given.get("ssl_ca_path") or None,
        certfile=given.get("ssl_certfile") or None,
        keyfile=given.get("ssl_keyfile") or None,
        cert_reqs=reqs,
        check_hostname=check in ("true", "1", "yes"),
    )


def redis_py_client(
    address: RedisAddress,
    *,
    timeout_s: float,
    connect_timeout_s: float,
    max_connections: int = 64,
) -> aioredis.Redis:
    """A redis-py client for ``address``: explicit timeouts and no retries (no retry storms)."""
    kwargs: dict[str, Any] = {
        "db": address.db,
        "username": address.username,
        "password": address.password,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": connect_timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
        "max_connections": max_connections,
    }
    if address.path is not None:
        return aioredis.Redis(unix_socket_path=address.path, **kwargs)
    tls = address.tls
    if tls is not None:
        kwargs.update(
            ssl=True,
            ssl_ca_certs=tls.ca_certs,
            ssl_ca_path=tls.ca_path,
            ssl_certfile=tls.certfile,
            ssl_keyfile=tls.keyfile,
            ssl_cert_reqs=tls.cert_reqs,
            ssl_check_hostname=tls.check_hostname and tls.cert_reqs != "none",
        )
    return aioredis.Redis(host=address.host or "127.0.0.1", port=address.port, **kwargs)


def redis_client_for(url: str, timeout_s: float) -> aioredis.Redis:
    """A redis-py client for a URL, for tools and background work (generous timeouts)."""
    return redis_py_client(
        parse_redis_url(url), timeout_s=timeout_s, connect_timeout_s=min(timeout_s, 10.0)
    )

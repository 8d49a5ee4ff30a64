"""Admin API tokens: created by the CLI, stored only as hashes, each with scopes.

A token is ``pst_`` + 32 random bytes (base64url), shown once at creation.
Redis keeps, per token, the SHA-256 of it (the hash's field name) and its
name, scopes and creation time; the plain token is never stored. A presented
token is hashed and looked up; the stored digest is then compared with
:func:`hmac.compare_digest`, so the check does not leak how much matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from service.store.keyspace import ADMIN_TOKENS

PREFIX = "pst_"
SCOPES = ("config:read", "config:write", "publish", "models", "privacy")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
_TOKEN_RE = re.compile(r"^pst_[A-Za-z0-9_-]{43}\Z")


class TokenError(ValueError):
    """A token cannot be created as asked (bad name or scope, name taken)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called the admin API: the token's name and scopes."""

    name: str
    scopes: frozenset[str]
    digest: str

    def can(self, scope: str) -> bool:
        """Whether the token carries ``scope``."""
        return scope in self.scopes


def digest(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Tokens in one Redis hash (admin data, not per person: it does not expire)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def create(self, name: str, scopes: list[str]) -> str:
        """A new token with ``scopes`` under ``name``; returns the plain token (shown once)."""
        if not NAME_RE.match(name):
            raise TokenError(f"token name {name!r}: 1-64 letters, digits, _ . @ -")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise TokenError(f"scopes must be some of {', '.join(SCOPES)}; got {scopes}")
        if any(p.name == name for p in await self.list()):
            raise TokenError(f"a token named {name!r} exists; revoke it first")
        token = PREFIX + secrets.token_urlsafe(32)
        record = {"name": name, "scopes": sorted(set(scopes)), "created": time.time()}
        await self.client.hset(ADMIN_TOKENS, digest(token), orjson.dumps(record))
        return token

    async def list(self) -> list[Principal]:
        """Every token's name and scopes (never the token)."""
        raw: dict[Any, Any] = await self.client.hgetall(ADMIN_TOKENS)
        return sorted(
            (_principal(_text(k), orjson.loads(v)) for k, v in raw.items()),
            key=lambda p: p.name,
        )

    async def revoke(self, name: str) -> bool:
        """Delete the token named ``name``; whether there was one."""
        for p in await self.list():
            if p.name == name:
                return bool(await self.client.hdel(ADMIN_TOKENS, p.digest))
        return False

    async def verify(self, token: str) -> Principal | None:
        """The principal of a presented token, or ``None`` for an unknown or malformed one."""
        if not _TOKEN_RE.match(token):
            return None
        wanted = digest(token)
        raw = await self.client.hget(ADMIN_TOKENS, wanted)
        if raw is None:
            return None
        # the lookup found the field by its name; compare anyway, in constant time
        record: dict[str, Any] = orjson.loads(raw)
        principal = _principal(wanted, record)
        if not hmac.compare_digest(principal.digest.encode(), wanted.encode()):
            return None
        return principal


def _principal(stored_digest: str, record: dict[str, Any]) -> Principal:
    return Principal(str(record["name"]), frozenset(record["scopes"]), stored_digest)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

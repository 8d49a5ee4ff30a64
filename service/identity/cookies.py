"""HMAC-signed visitor cookies with key rotation.

Cookie value: ``<visitor_id>.<issued_at base36>.<signature>`` where the
signature is the first 16 bytes of HMAC-SHA256(key, "<visitor_id>.<issued>"),
base64url without padding. The first key signs; every key verifies, so keys
rotate by putting a new key first and dropping the old one after a max-age.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from service.identity.visitor import is_valid_visitor_id

MAX_COOKIE_LENGTH = 200
CLOCK_SKEW_S = 300
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


@dataclass(frozen=True, slots=True)
class VerifiedCookie:
    """A cookie that passed verification."""

    visitor_id: str
    issued_at: int
    key_index: int


class CookieSigner:
    """Signs and verifies visitor cookies with a list of keys."""

    def __init__(self, secrets: tuple[str, ...], max_age_s: int) -> None:
        if not secrets:
            raise ValueError("at least one cookie secret is required")
        self._keys = tuple(s.encode() for s in secrets)
        self.max_age_s = max_age_s

    def _mac(self, key: bytes, payload: str) -> str:
        digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, visitor_id: str, issued_at: int) -> str:
        """The cookie value for ``visitor_id`` issued at ``issued_at`` (Unix seconds)."""
        payload = f"{visitor_id}.{_b36(issued_at)}"
        return f"{payload}.{self._mac(self._keys[0], payload)}"

    def verify(self, value: str, now: float) -> VerifiedCookie | None:
        """The cookie's contents if it is authentic and fresh, else ``None``."""
        if not value or len(value) > MAX_COOKIE_LENGTH or not value.isascii():
            return None
        parts = value.split(".")
        if len(parts) != 3:
            return None
        visitor_id, issued_raw, signature = parts
        if not is_valid_visitor_id(visitor_id):
            return None
        if not issued_raw or len(issued_raw) > 8 or any(c not in _B36 for c in issued_raw):
            return None
        issued = int(issued_raw, 36)
        if issued > now + CLOCK_SKEW_S or now - issued > self.max_age_s:
            return None
        payload = f"{visitor_id}.{issued_raw}"
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(self._mac(key, payload), signature):
                return VerifiedCookie(visitor_id, issued, index)
        return None

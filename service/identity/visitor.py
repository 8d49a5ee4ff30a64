"""Visitor ids: their format, minting, and the identification step.

A visitor id is 16 to 64 characters of ``A-Z a-z 0-9 _ -``. Minted ids are 22
characters: 128 random bits, base64url. Ids become parts of Redis keys, so
nothing else is ever accepted.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass

VISITOR_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
# Python's "$" also matches before a final newline; "\Z" does not.
VISITOR_ID_STRICT = VISITOR_ID_PATTERN[:-1] + r"\Z"
_VISITOR_ID_RE = re.compile(VISITOR_ID_STRICT)


def is_valid_visitor_id(value: str) -> bool:
    """Whether ``value`` has the visitor-id format."""
    return bool(_VISITOR_ID_RE.match(value))


def mint_visitor_id() -> str:
    """A new random visitor id."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the request is about, and what to send back.

    ``known`` is true when the id came from the caller (a valid cookie or an
    explicit id) and consent allows reading, so there may be a stored profile.
    ``visitor_id`` is ``None`` without consent to personalization. ``cookie`` is
    a value to set on the response, or ``None`` to leave the cookie alone;
    ``clear_cookie`` asks to delete an identifier the visitor no longer allows.
    """

    visitor_id: str | None
    source: str
    known: bool
    cookie: str | None
    clear_cookie: bool = False

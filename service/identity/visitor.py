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


SERVER_ID_MIN_LENGTH = 22
SERVER_ID_MIN_DISTINCT = 8


def weak_visitor_id(value: str) -> str:
    """Why a visitor id named by the site's server is too weak to be a key; ``""`` if not.

    The documented minimum strength: at least 22 characters (the length of 128
    random bits in base64url; a UUID's 32 hex digits qualify) made of at least
    8 different characters, so sequential or repeated ids such as
    ``0000000000000000`` are refused. The format check comes first.
    """
    if len(value) < SERVER_ID_MIN_LENGTH:
        return (
            f"visitor_id must be at least {SERVER_ID_MIN_LENGTH} characters "
            "(use 128 random bits, e.g. a UUID)"
        )
    if len(set(value)) < SERVER_ID_MIN_DISTINCT:
        return "visitor_id is too predictable (use 128 random bits, e.g. a UUID)"
    return ""


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
    ``clear_cookie`` asks to delete an identifier the visitor no longer allows;
    ``withdrawing`` is the id whose consent this call refuses explicitly (its data
    is to be deleted and its erasure queued).
    """

    visitor_id: str | None
    source: str
    known: bool
    cookie: str | None
    clear_cookie: bool = False
    withdrawing: str | None = None

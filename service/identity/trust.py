"""Who is calling: a browser, or the site's own server.

Persona's trust model (docs/security.md) has four callers. A **browser** acts
only on the visitor its own signed cookie names. The **site's server**
authenticates with an API key (``Authorization: Bearer <key>``) and may name
any visitor or customer. Marketers use admin tokens with scopes
(``service/admin/auth.py``); operators use the command line. This module
tells the first two apart; every public route asks it before it lets a
request name a person.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Trust:
    """What a request may do beyond its own cookie."""

    server: bool
    """Authenticated with one of the site's API keys: may name visitors and customers."""

    @property
    def caller(self) -> str:
        """``server`` or ``browser`` (a metrics and log label)."""
        return "server" if self.server else "browser"


BROWSER = Trust(server=False)
SERVER = Trust(server=True)


class InvalidApiKey(ValueError):
    """A request presented an ``Authorization`` header that is not one of the API keys."""


class ApiKeys:
    """The site's API keys, compared in constant time (every key is checked)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._digests = tuple(hashlib.sha256(k.encode()).digest() for k in keys)

    def trust(self, authorization: str | None) -> Trust:
        """The trust of a request with this ``Authorization`` header.

        No header: a browser. A header that is not ``Bearer <one of the keys>``
        raises :class:`InvalidApiKey`, so a misconfigured server gets a clear 401
        instead of being treated as a browser.
        """
        if authorization is None:
            return BROWSER
        if not authorization.startswith("Bearer "):
            raise InvalidApiKey("Authorization must be 'Bearer <API key>'")
        given = hashlib.sha256(authorization[7:].strip().encode("utf-8", "replace")).digest()
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(given, digest)
        if not found:
            raise InvalidApiKey("the API key is not one of PERSONA_API_KEYS")
        return SERVER

"""Customer ids: pseudonymized at once, and trusted from a browser only with a login token.

The site's customer id never reaches Redis: it becomes a profile id
``cust-<32 hex>`` = HMAC-SHA256(PERSONA_CUSTOMER_ID_KEY, id), a key kept in
settings only.

A browser may link itself to a customer only with a **login token** made by
the site's server at login: ``v1.<expires>.<hex HMAC-SHA256(site secret,
"persona-login-v1\\n" + customer id + "\\n" + visitor id + "\\n" + expires)>``.
The token binds the customer to the visitor id in that browser's
``persona_vid`` cookie (the part before the first dot) and expires within
minutes, so a token copied to another browser, or replayed later, is refused.
The site's server may instead call with an API key and name the visitor.
Site secrets rotate like cookie secrets: the first signs, every one verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import re

LOGIN_FORMAT = "v1"
MAX_LOGIN_TTL_S = 3600
"""Longest lifetime of a login token; the site's server should use a few minutes."""
CLOCK_SKEW_S = 60
_TOKEN_RE = re.compile(r"^v1\.([0-9]{1,12})\.([0-9a-f]{64})\Z")


def login_message(customer_id: str, visitor_id: str, expires: int) -> bytes:
    """What a login token signs (unambiguous: the last two fields have fixed formats)."""
    return f"persona-login-v1\n{customer_id}\n{visitor_id}\n{expires}".encode()


def sign_login(site_secret: str, customer_id: str, visitor_id: str, expires: int) -> str:
    """The login token the site's server gives its page for ``customer_id``.

    ``visitor_id`` is the id in the visitor's ``persona_vid`` cookie (the text
    before its first dot); ``expires`` is a Unix time a few minutes ahead.
    """
    mac = hmac.new(site_secret.encode(), login_message(customer_id, visitor_id, expires), "sha256")
    return f"{LOGIN_FORMAT}.{expires}.{mac.hexdigest()}"


class CustomerKeys:
    """The secrets of customer identity: the pseudonym key and the site's signing secrets."""

    def __init__(self, pseudonym_key: str, site_secrets: tuple[str, ...]) -> None:
        if not site_secrets:
            raise ValueError("at least one site secret is required")
        self._pseudonym_key = pseudonym_key.encode()
        self._site_secrets = site_secrets

    def profile_id(self, customer_id: str) -> str:
        """The pseudonymous profile id of a customer (a valid visitor id)."""
        digest = hmac.new(self._pseudonym_key, customer_id.encode(), hashlib.sha256)
        return "cust-" + digest.hexdigest()[:32]

    def sign_login(self, customer_id: str, visitor_id: str, expires: int) -> str:
        """A login token with the current (first) site secret."""
        return sign_login(self._site_secrets[0], customer_id, visitor_id, expires)

    def check_login(self, token: str | None, customer_id: str, visitor_id: str, now: float) -> str:
        """Why ``token`` does not log ``visitor_id`` in as ``customer_id``; ``""`` if it does."""
        if token is None:
            return "customer_id needs a login token from the site's server, or an API key"
        m = _TOKEN_RE.match(token)
        if m is None:
            return "the login token is malformed (expected v1.<expires>.<64 hex>)"
        expires = int(m.group(1))
        if expires < now - CLOCK_SKEW_S:
            return "the login token has expired"
        if expires > now + MAX_LOGIN_TTL_S + CLOCK_SKEW_S:
            return f"the login token lives longer than {MAX_LOGIN_TTL_S // 60} minutes"
        message = login_message(customer_id, visitor_id, expires)
        valid = False
        for secret in self._site_secrets:
            mac = hmac.new(secret.encode(), message, "sha256").hexdigest()
            valid |= hmac.compare_digest(mac, m.group(2))
        if not valid:
            return "the login token is not valid for this customer and this visitor"
        return ""

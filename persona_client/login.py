"""Login tokens: the site's server lets the visitor's browser link itself to a customer.

At login the site's server makes a token bound to the browser's Persona
cookie and puts it in the page, whose script sends it with an ``identify``
event (docs/security.md#login-tokens). The cookie is ``HttpOnly`` (hidden from
the page's scripts, not from the site's server) and, with Persona served
under the site's own domain, first-party: the login request carries it.
(With Persona on another origin the site's server never sees the cookie; it
can instead send the ``identify`` event itself, with its API key.)
"""

from __future__ import annotations

import time

from service.identity.customer import MAX_LOGIN_TTL_S, sign_login
from service.identity.visitor import is_valid_visitor_id

COOKIE_NAME = "persona_vid"
"""The cookie's name unless the service sets ``PERSONA_COOKIE_NAME``."""


def cookie_visitor_id(cookie: str | None) -> str | None:
    """The visitor id in a Persona cookie's value (``<id>.<issued>.<signature>``).

    ``None`` when the browser has no such cookie or it is malformed. The
    signature is not checked here (the site has no cookie secret) and need not
    be for a login token: the service checks the token against the browser's
    own verified cookie, so a token for a forged id links nobody.
    """
    if not cookie:
        return None
    parts = cookie.strip('"').split(".")
    if len(parts) != 3 or not is_valid_visitor_id(parts[0]):
        return None
    return parts[0]


def login_token(
    site_secret: str,
    customer_id: str,
    visitor_id: str,
    *,
    ttl_s: int = 300,
    now: float | None = None,
) -> str:
    """A login token for ``customer_id`` on the browser whose cookie holds ``visitor_id``.

    ``site_secret`` is the first of the service's ``PERSONA_SITE_SECRETS``;
    the token expires after ``ttl_s`` seconds (at most an hour).
    """
    if not site_secret:
        raise ValueError("site_secret is one of the service's PERSONA_SITE_SECRETS")
    if not 0 < ttl_s <= MAX_LOGIN_TTL_S:
        raise ValueError(f"ttl_s must be between 1 and {MAX_LOGIN_TTL_S} seconds")
    if not 0 < len(customer_id) <= 128:
        raise ValueError("customer_id must be 1 to 128 characters")
    if not is_valid_visitor_id(visitor_id):
        raise ValueError("visitor_id is not a Persona visitor id (see cookie_visitor_id)")
    expires = int((time.time() if now is None else now) + ttl_s)
    return sign_login(site_secret, customer_id, visitor_id, expires)

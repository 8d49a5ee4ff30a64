"""The identification step of every request: who is this visitor?

One function, so consent (which decides whether an id may be read or set at
all) plugs in here and nowhere else.
"""

from __future__ import annotations

from service.identity.consent import ConsentState
from service.identity.cookies import CookieSigner
from service.identity.visitor import Identity, mint_visitor_id

REFRESH_AFTER_S = 86400


def identify(
    signer: CookieSigner,
    cookie_value: str | None,
    explicit_visitor_id: str | None,
    now: float,
    consent: ConsentState,
) -> tuple[Identity, str]:
    """Resolve the visitor and the cookie outcome.

    Returns the identity and an outcome label for metrics: ``no_consent``
    (nothing identified; an existing cookie is deleted), ``explicit``,
    ``valid``, ``refreshed`` (re-signed with the current key or aged),
    ``minted`` (no cookie) or ``rejected`` (tampered or expired: replaced).
    ``explicit_visitor_id`` must already be format-checked by the caller.
    """
    if not consent.personalization:
        return Identity(None, "none", False, None, clear_cookie=bool(cookie_value)), "no_consent"
    if explicit_visitor_id is not None:
        return Identity(explicit_visitor_id, "explicit", True, None), "explicit"
    if cookie_value:
        verified = signer.verify(cookie_value, now)
        if verified is not None:
            stale = verified.key_index != 0 or now - verified.issued_at > REFRESH_AFTER_S
            if stale:
                fresh = signer.sign(verified.visitor_id, int(now))
                return Identity(verified.visitor_id, "cookie", True, fresh), "refreshed"
            return Identity(verified.visitor_id, "cookie", True, None), "valid"
        outcome = "rejected"
    else:
        outcome = "minted"
    visitor_id = mint_visitor_id()
    return Identity(visitor_id, "minted", False, signer.sign(visitor_id, int(now))), outcome

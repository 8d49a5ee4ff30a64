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
    named_visitor_id: str | None,
    now: float,
    consent: ConsentState,
) -> tuple[Identity, str]:
    """Resolve the visitor and the cookie outcome.

    Returns the identity and an outcome label for metrics: ``no_consent``
    (nothing identified), ``withdrawn`` (an explicit refusal with a valid
    cookie or a named visitor: that id's consent is withdrawn and the cookie
    deleted), ``explicit`` (named by the site's server), ``valid``,
    ``refreshed`` (re-signed with the current key or aged), ``minted`` (no
    cookie) or ``rejected`` (tampered or expired: replaced).
    ``named_visitor_id`` must already be checked: only the site's server names one.

    Without a consent header (``PERSONA_CONSENT_DEFAULT`` applies) nothing is
    read, written or changed, the cookie included: only an explicit refusal
    withdraws.
    """
    if not consent.personalization:
        if consent.source != "header":
            return Identity(None, "none", False, None), "no_consent"
        verified = signer.verify(cookie_value, now) if cookie_value else None
        target = named_visitor_id or (verified.visitor_id if verified else None)
        identity = Identity(
            None, "none", False, None, clear_cookie=bool(cookie_value), withdrawing=target
        )
        return identity, ("withdrawn" if target else "no_consent")
    if named_visitor_id is not None:
        return Identity(named_visitor_id, "explicit", True, None), "explicit"
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

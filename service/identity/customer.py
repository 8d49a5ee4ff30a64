"""Customer ids: pseudonymized at once, and trusted only with the site's signature.

The site's customer id never reaches Redis: it becomes a profile id
``cust-<32 hex>`` = HMAC-SHA256(PERSONA_CUSTOMER_ID_KEY, id), a key kept in
settings only. A customer id that comes from a browser must carry the site
server's signature, hex HMAC-SHA256(PERSONA_SITE_SECRET, id), or a page could
claim anyone's profile; the site's own server may instead authenticate the
call with an API key.
"""

from __future__ import annotations

import hashlib
import hmac


class CustomerKeys:
    """The two secrets of customer identity."""

    def __init__(self, pseudonym_key: str, site_secret: str) -> None:
        self._pseudonym_key = pseudonym_key.encode()
        self._site_secret = site_secret.encode()

    def profile_id(self, customer_id: str) -> str:
        """The pseudonymous profile id of a customer (a valid visitor id)."""
        digest = hmac.new(self._pseudonym_key, customer_id.encode(), hashlib.sha256)
        return "cust-" + digest.hexdigest()[:32]

    def sign(self, customer_id: str) -> str:
        """The signature the site's server gives its pages for ``customer_id``."""
        return hmac.new(self._site_secret, customer_id.encode(), hashlib.sha256).hexdigest()

    def verify(self, customer_id: str, signature: str | None) -> bool:
        """Whether ``signature`` is the site's signature of ``customer_id``."""
        return signature is not None and hmac.compare_digest(self.sign(customer_id), signature)

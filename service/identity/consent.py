"""The visitor's consent, carried by every decide and event call.

``X-Persona-Consent`` lists what the visitor agreed to, comma-separated:
``personalization``, ``analytics``; ``none`` refuses both and ``all`` grants
both. A call without it is judged by ``PERSONA_CONSENT_DEFAULT`` (shipped:
``denied``). Without consent to personalization nothing is read or written
for the person and no cookie is set.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = "X-Persona-Consent"
PURPOSES = ("personalization", "analytics")


class ConsentError(ValueError):
    """The consent header is malformed; the message says how."""


@dataclass(frozen=True, slots=True)
class ConsentState:
    """What this call may do for the person, and where that came from."""

    personalization: bool
    analytics: bool
    source: str


def parse_consent(value: str | None, default_granted: bool) -> ConsentState:
    """Read the header (``None`` when absent)."""
    if value is None:
        return ConsentState(default_granted, default_granted, "default")
    tokens = {t.strip().lower() for t in value.split(",") if t.strip()}
    if not tokens:
        raise ConsentError(f"{HEADER} is empty; send 'none' to refuse")
    unknown = tokens - {*PURPOSES, "none", "all"}
    if unknown:
        raise ConsentError(
            f"{HEADER} has unknown purposes {sorted(unknown)}; "
            "use personalization, analytics, all or none"
        )
    if "none" in tokens and len(tokens) > 1:
        raise ConsentError(f"{HEADER} cannot combine 'none' with other purposes")
    everything = "all" in tokens
    return ConsentState(
        everything or "personalization" in tokens, everything or "analytics" in tokens, "header"
    )

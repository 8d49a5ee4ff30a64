"""What both clients send and receive, whatever the HTTP library: requests, answers, settings."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.identity.consent import HEADER as CONSENT_HEADER
from service.identity.consent import parse_consent

Content = Mapping[str, Any]
"""A variant's content: the JSON object the catalog holds for it."""

USER_AGENT = "persona-client-python"
_MAX_USER_AGENT = 512


@dataclass(frozen=True, slots=True)
class Request:
    """One ``POST`` to the service."""

    path: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Response:
    """What the service answered."""

    status: int
    body: bytes
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """No usable answer: ``reason`` is ``client_timeout``, ``client_unavailable`` or
    ``client_bad_answer``; ``detail`` says what happened, for the log."""

    reason: str
    detail: str


Outcome = Response | Failure


@dataclass(frozen=True, slots=True)
class Config:
    """A client's settings, checked once at construction."""

    scheme: str
    host: str
    port: int | None
    base_path: str
    api_key: str
    timeout_s: float
    defaults: Mapping[str, Content] = field(default_factory=dict)
    events_timeout_s: float = 2.0
    events_max_attempts: int = 4
    events_max_wait_s: float = 10.0

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``, for the async client's URLs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}"


def make_config(
    endpoint: str,
    api_key: str,
    *,
    timeout_s: float,
    defaults: Mapping[str, Content] | None,
    events_timeout_s: float,
    events_max_attempts: int,
    events_max_wait_s: float,
) -> Config:
    """Check a client's arguments; ``ValueError`` says which one is wrong."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"endpoint must be an http:// or https:// URL, got {endpoint!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("endpoint is a base URL: no credentials, query or fragment")
    if not api_key or not api_key.isascii() or not api_key.isprintable() or " " in api_key:
        raise ValueError("api_key must be one of the service's PERSONA_API_KEYS")
    for name, value in (
        ("timeout_s", timeout_s),
        ("events_timeout_s", events_timeout_s),
        ("events_max_wait_s", events_max_wait_s),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if events_max_attempts < 1:
        raise ValueError(f"events_max_attempts must be at least 1, got {events_max_attempts!r}")
    return Config(
        scheme=parts.scheme,
        host=parts.hostname,
        port=parts.port,
        base_path=parts.path.rstrip("/"),
        api_key=api_key,
        timeout_s=timeout_s,
        defaults=dict(defaults or {}),
        events_timeout_s=events_timeout_s,
        events_max_attempts=events_max_attempts,
        events_max_wait_s=events_max_wait_s,
    )


def check_consent(consent: str | None) -> str | None:
    """The consent header's value, or ``None`` to send no header (the service's default).

    Raises ``ValueError`` for a value the service would refuse: a list of
    ``personalization`` and ``analytics``, or ``all``, or ``none``. ``none`` is
    a refusal: the service withdraws the named visitor's consent and deletes
    their profile.
    """
    if consent is None:
        return None
    parse_consent(consent, default_granted=False)
    return consent.strip()


def request_headers(
    config: Config, consent: str | None, user_agent: str | None = None
) -> dict[str, str]:
    """The headers of a call: the API key, JSON, and the consent header only when given."""
    out = {
        "Authorization": f"Bearer {config.api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": _printable(user_agent) or USER_AGENT,
    }
    if consent is not None:
        out[CONSENT_HEADER] = consent
    return out


def post(config: Config, route: str, body: bytes, headers: Mapping[str, str]) -> Request:
    """A request to ``route`` (``/v1/...``) under the endpoint's path."""
    return Request(config.base_path + route, body, headers)


def _printable(value: str | None) -> str:
    # a browser's User-Agent is forwarded as is, minus what cannot go in a header
    if not value:
        return ""
    return "".join(c for c in value if " " <= c <= "~")[:_MAX_USER_AGENT].strip()

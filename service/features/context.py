"""The request context a decision is made in (device, page, referrer, time)."""

from __future__ import annotations

import time
from dataclasses import dataclass

REFERRERS = ("search", "social", "direct", "email", "ads", "other")

_SEARCH_HOSTS = ("google.", "bing.", "duckduckgo.", "yahoo.", "ecosia.", "baidu.", "yandex.")
_SOCIAL_HOSTS = (
    "facebook.",
    "instagram.",
    "t.co",
    "twitter.",
    "x.com",
    "linkedin.",
    "pinterest.",
    "reddit.",
    "tiktok.",
    "youtube.",
)


@dataclass(frozen=True, slots=True)
class Context:
    """Normalized request context; every field has a safe default."""

    device: str = "desktop"
    page_type: str = "other"
    category: str | None = None
    referrer: str = "direct"
    hour: int = 12
    dow: int = 0


def device_from_user_agent(user_agent: str) -> str:
    """Classify a User-Agent header as mobile, tablet or desktop (cheap substring test)."""
    ua = user_agent.lower()
    if "ipad" in ua or "tablet" in ua or ("android" in ua and "mobile" not in ua):
        return "tablet"
    if "mobi" in ua or "iphone" in ua:
        return "mobile"
    return "desktop"


def classify_referrer(referrer: str) -> str:
    """Map a referrer URL (or an already-classified name) to a referrer class."""
    value = referrer.strip().lower()
    if value in REFERRERS:
        return value
    if not value:
        return "direct"
    if "utm_medium=email" in value or "mail." in value:
        return "email"
    if "gclid=" in value or "utm_medium=cpc" in value:
        return "ads"
    host = value.split("://", 1)[-1].split("/", 1)[0]
    if any(h in host for h in _SEARCH_HOSTS):
        return "search"
    if any(h in host for h in _SOCIAL_HOSTS):
        return "social"
    return "other"


def time_parts(now: float, hour: int | None, dow: int | None) -> tuple[int, int]:
    """Local hour and day of week: the client's when given, else UTC from ``now``."""
    if hour is not None and dow is not None:
        return hour, dow
    t = time.gmtime(now)
    return (t.tm_hour if hour is None else hour), (t.tm_wday if dow is None else dow)

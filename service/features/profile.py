"""The visitor profile: the record the decision path reads in one Redis round trip.

Layout (one JSON document per person at ``keyspace.profile_key``; short keys keep it
small, orjson decodes ~1 KB in ~2 µs). Timestamps are Unix seconds.

====================  =====================================================
key                   meaning
====================  =====================================================
``v``                 layout version (1)
``first``/``last``    first and last activity
``sessions``          sessions (30 min of inactivity starts a new one)
``views``             page views
``clicks``/``imps``   clicks on / impressions of any variant
``convs``/``revenue`` conversions and their summed value
``fb_sum``/``fb_n``   sum and count of 1-7 feedback ratings
``cat``               ``{category: [score, ts]}`` decayed affinity: the score
                      as of ``ts``; its value at ``now`` is
                      ``score * 2 ** (-(now - ts) / half_life)``
``tag``               ``{tag: [score, ts]}`` as ``cat``
``cat_clicks``        ``{category: clicks}``
``recent``            last categories viewed, most recent first (max 10)
``var``               ``{variant_id: [impressions, clicks, last_impression_ts]}``
``price_sum``/``price_n``  sum and count of price bands viewed
====================  =====================================================
"""

from __future__ import annotations

from typing import Any

import orjson

PROFILE_VERSION = 1
RECENT_MAX = 10

Profile = dict[str, Any]


def decode_profile(raw: bytes | None) -> Profile | None:
    """Decode a stored profile; ``None`` for a missing or unreadable record."""
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def encode_profile(profile: Profile) -> bytes:
    """Encode a profile for storage."""
    return orjson.dumps(profile)


def empty_profile(now: float) -> Profile:
    """A new person's profile."""
    return {
        "v": PROFILE_VERSION,
        "first": now,
        "last": now,
        "sessions": 0,
        "views": 0,
        "clicks": 0,
        "imps": 0,
        "convs": 0,
        "revenue": 0.0,
        "fb_sum": 0.0,
        "fb_n": 0,
        "cat": {},
        "tag": {},
        "cat_clicks": {},
        "recent": [],
        "var": {},
        "price_sum": 0.0,
        "price_n": 0,
    }

"""How events change a visitor profile: the reference semantics.

A profile is the dict documented in :mod:`service.features.profile`. Each
``apply_*`` function updates one in place, exactly as one tracked event would,
and returns it. The simulator builds its visitors' histories with them, and the
Redis script that updates live profiles must mirror them operation for
operation, so they are deliberately plain: counters, ``min``/``max`` of
timestamps, and one decayed-score update.

Rules shared by every event:

* ``first`` becomes ``min(first, ts)`` and ``last`` becomes ``max(last, ts)``
  (impressions, clicks, conversions and feedback are activity too).
* Keys missing from an older or partial profile are first filled in as in
  :func:`service.features.profile.empty_profile` (with ``ts`` as the time).

Decayed scores (``cat`` and ``tag`` entries are ``[score, as_of_ts]``) are
updated by :func:`bump_score`: the stored score is decayed to the event time
with ``2 ** (-(ts - as_of_ts) / half_life_s)`` and the event's amount is added.
An event older than the entry (out of order) is decayed to the entry's time
instead, so the entry never moves back in time; either way the result equals
the sum of every event's amount decayed to ``max`` of the two times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from service.features.profile import RECENT_MAX, Profile, empty_profile

SESSION_GAP_S = 30 * 60
"""Inactivity (seconds, inclusive) after which a page view starts a new session."""

VIEW_AFFINITY = 1.0
"""Affinity a page view adds to its category and to each of its tags."""

CLICK_AFFINITY = 2.0
"""Affinity a click adds to the clicked variant's category."""

DEFAULT_HALF_LIFE_S = 14 * 86400.0
"""The service's default affinity half-life (``affinity_half_life_days`` = 14)."""

FEEDBACK_MIN = 1
FEEDBACK_MAX = 7


def _prepare(profile: Profile, ts: float) -> Profile:
    """Fill missing keys and record ``ts`` as activity."""
    for key, value in empty_profile(ts).items():
        if key not in profile:
            profile[key] = value
    profile["first"] = min(float(profile["first"]), ts)
    profile["last"] = max(float(profile["last"]), ts)
    return profile


def _check_half_life(half_life_s: float) -> None:
    if not half_life_s > 0 or math.isinf(half_life_s):
        raise ValueError(f"half_life_s must be a positive number of seconds, got {half_life_s!r}")


def bump_score(
    table: dict[str, Any], key: str, amount: float, ts: float, half_life_s: float
) -> None:
    """Add ``amount`` at time ``ts`` to the decayed score ``table[key]``.

    ``table[key]`` is ``[score, as_of_ts]``; a missing or malformed entry counts
    as zero. If ``ts >= as_of_ts`` the result is
    ``[score * 2 ** (-(ts - as_of_ts) / half_life_s) + amount, ts]``, otherwise
    ``[score + amount * 2 ** (-(as_of_ts - ts) / half_life_s), as_of_ts]``.
    """
    entry = table.get(key)
    try:
        score, as_of = float(entry[0]), float(entry[1])  # type: ignore[index]
    except (TypeError, ValueError, IndexError, KeyError):
        table[key] = [amount, ts]
        return
    if ts >= as_of:
        table[key] = [score * 2.0 ** (-(ts - as_of) / half_life_s) + amount, ts]
    else:
        table[key] = [score + amount * 2.0 ** (-(as_of - ts) / half_life_s), as_of]


def _variant_entry(profile: Profile, variant_id: str) -> list[Any]:
    """``var[variant_id]`` as ``[impressions, clicks, last_impression_ts]``, created if missing."""
    table = profile["var"]
    entry = table.get(variant_id)
    if not (isinstance(entry, list) and len(entry) >= 3):
        entry = [0, 0, 0]
        table[variant_id] = entry
    return entry


def apply_view(
    profile: Profile,
    *,
    category: str | None,
    tags: Iterable[str] = (),
    price_band: int | None = None,
    ts: float,
    half_life_s: float,
) -> Profile:
    """A page view.

    ``views`` += 1. ``sessions`` += 1 if this is the first view or the previous
    activity (``last``, before this event) is at least :data:`SESSION_GAP_S`
    earlier. If the page has a ``category``, its affinity gets
    :data:`VIEW_AFFINITY` (see :func:`bump_score`) and it is put at the front
    of ``recent`` (duplicates kept, at most ``RECENT_MAX`` entries). Each
    distinct tag's affinity gets :data:`VIEW_AFFINITY`. A page with a
    ``price_band`` adds it to ``price_sum`` and 1 to ``price_n``.
    """
    _check_half_life(half_life_s)
    had_views = profile.get("views", 0) > 0 or profile.get("sessions", 0) > 0
    previous_last = float(profile.get("last", ts))
    _prepare(profile, ts)
    if not had_views or ts - previous_last >= SESSION_GAP_S:
        profile["sessions"] += 1
    profile["views"] += 1
    if category is not None:
        bump_score(profile["cat"], category, VIEW_AFFINITY, ts, half_life_s)
        profile["recent"] = [category, *profile["recent"][: RECENT_MAX - 1]]
    for tag in dict.fromkeys(tags):
        bump_score(profile["tag"], tag, VIEW_AFFINITY, ts, half_life_s)
    if price_band is not None:
        profile["price_sum"] += price_band
        profile["price_n"] += 1
    return profile


def apply_impression(profile: Profile, *, variant_id: str, ts: float) -> Profile:
    """A variant was shown: ``imps`` += 1, ``var[id][0]`` += 1, ``var[id][2] = ts``."""
    _prepare(profile, ts)
    profile["imps"] += 1
    entry = _variant_entry(profile, variant_id)
    entry[0] += 1
    entry[2] = ts
    return profile


def apply_click(
    profile: Profile,
    *,
    variant_id: str,
    category: str,
    ts: float,
    half_life_s: float = DEFAULT_HALF_LIFE_S,
) -> Profile:
    """A click on a variant of ``category``.

    ``clicks`` += 1, ``var[id][1]`` += 1 (the entry is created as ``[0, 1, 0]``
    if the impression was never recorded), ``cat_clicks[category]`` += 1, and
    the category's affinity gets :data:`CLICK_AFFINITY`.
    """
    _check_half_life(half_life_s)
    _prepare(profile, ts)
    profile["clicks"] += 1
    _variant_entry(profile, variant_id)[1] += 1
    cat_clicks = profile["cat_clicks"]
    cat_clicks[category] = cat_clicks.get(category, 0) + 1
    bump_score(profile["cat"], category, CLICK_AFFINITY, ts, half_life_s)
    return profile


def apply_conversion(profile: Profile, *, value: float, ts: float) -> Profile:
    """A conversion (purchase) worth ``value`` (>= 0): ``convs`` += 1, ``revenue`` += value."""
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"conversion value must be a finite number >= 0, got {value!r}")
    _prepare(profile, ts)
    profile["convs"] += 1
    profile["revenue"] += float(value)
    return profile


def apply_feedback(profile: Profile, *, rating: int, ts: float) -> Profile:
    """A 1-7 feedback rating: ``fb_sum`` += rating, ``fb_n`` += 1."""
    if isinstance(rating, bool) or not FEEDBACK_MIN <= rating <= FEEDBACK_MAX:
        raise ValueError(f"rating must be {FEEDBACK_MIN}-{FEEDBACK_MAX}, got {rating!r}")
    _prepare(profile, ts)
    profile["fb_sum"] += float(rating)
    profile["fb_n"] += 1
    return profile

"""Every Redis key Persona writes: its pattern, type, owner, expiry and whether it is personal.

One module owns the layout, so that what an erasure must remove, what must
expire and what a cluster slot holds can be read (and tested) in one place.
A person's keys carry the hash tag ``{pNN}`` of their partition (CRC32 of the
id mod 64), which is also the partition of the event log they write to: one
server-side script updates them together, in one Redis Cluster slot.

A profile may hold ``{"alias": "<profile id>"}`` instead of a profile: a
device id linked to a customer. Every reader follows aliases through
:func:`follow_alias`, at most :data:`ALIAS_MAX_DEPTH` links; the scripts
(``events/*.lua``) never follow one themselves, they return it to the caller
(a chain crosses partitions, and so cluster slots).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

PARTITIONS = 64
ALIAS_MAX_DEPTH = 4
"""Longest chain of alias links followed (a device id -> a customer profile is one)."""

_TAG = "persona:{{p{part:02d}}}:"


def partition(visitor_id: str) -> int:
    """The partition (0-63) a person's keys and events live in."""
    return zlib.crc32(visitor_id.encode()) % PARTITIONS


def tag(visitor_id: str) -> str:
    """The key prefix of a person's partition, ``persona:{pNN}:``."""
    return _TAG.format(part=partition(visitor_id))


def profile_key(visitor_id: str) -> str:
    """The person's profile (JSON), or an alias to a customer profile."""
    # written out (not through tag()): it is built on every decision
    return f"persona:{{p{zlib.crc32(visitor_id.encode()) % PARTITIONS:02d}}}:profile:{visitor_id}"


def seen_key(visitor_id: str) -> str:
    """The person's recently seen event ids (ZSET, score = when), for idempotency."""
    return f"{tag(visitor_id)}seen:{visitor_id}"


def consent_key(visitor_id: str) -> str:
    """The person's latest consent choice (HASH): the proof of consent or its withdrawal."""
    return f"{tag(visitor_id)}consent:{visitor_id}"


def log_key(part: int) -> str:
    """One partition of the event log (STREAM)."""
    return _TAG.format(part=part) + "log"


ERASURE_QUEUE = "persona:erasure:pending"
CONFIG_VERSIONS = "persona:config:versions"
CONFIG_LIVE = "persona:config:live"
CONFIG_CHANNEL = "persona:config:published"  # a pub/sub channel, not a key
ADMIN_TOKENS = "persona:admin:tokens"
MODEL_BUNDLES = "persona:models:bundles"
MODEL_ACTIVE = "persona:models:active"
MODEL_ACTIVATIONS = "persona:models:activations"
MODEL_SHADOW = "persona:models:shadow"


def model_text_key(version: str) -> str:
    """A registered model's ``model.txt``."""
    return f"persona:models:text:{version}"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One kind of key."""

    pattern: str
    """A regular expression every key of this kind matches (whole key)."""
    type: str
    owner: str
    expiry: str
    personal: bool
    """Holds personal data (a person's id, profile or events)."""
    per_person: bool
    """One key per person: it must carry an expiry, and an erasure removes it."""


_ID = r"[A-Za-z0-9_-]{16,64}"
_P = r"persona:\{p[0-9]{2}\}:"

KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        _P + "profile:" + _ID,
        "string",
        "events/apply.lua, merge.lua, withdraw.lua; read by decide",
        "PERSONA_PROFILE_TTL_DAYS, refreshed on activity",
        personal=True,
        per_person=True,
    ),
    KeySpec(
        _P + "seen:" + _ID,
        "zset",
        "events/apply.lua, merge.lua",
        "PERSONA_DEDUPE_WINDOW_S",
        personal=True,
        per_person=True,
    ),
    KeySpec(
        _P + "consent:" + _ID,
        "hash",
        "events/apply.lua (grants), withdraw.lua (withdrawals)",
        "PERSONA_PROFILE_TTL_DAYS",
        personal=True,
        per_person=True,
    ),
    KeySpec(
        _P + "log",
        "stream",
        "events (every accepted event), decide (decisions); read by the log consumers",
        "PERSONA_LOG_WINDOW_S once archived (service/events/window.py), "
        "PERSONA_LOG_MEMORY_LIMIT_MB",
        personal=True,
        per_person=False,
    ),
    KeySpec(
        re.escape(ERASURE_QUEUE),
        "zset",
        "consent withdrawals",
        "until the person's log entries are erased",
        personal=True,
        per_person=False,
    ),
    KeySpec(re.escape(CONFIG_VERSIONS), "list", "admin/config.py", "kept", False, False),
    KeySpec(re.escape(CONFIG_LIVE), "string", "admin/config.py", "kept", False, False),
    KeySpec(re.escape(ADMIN_TOKENS), "hash", "admin/tokens.py", "kept", False, False),
    KeySpec(re.escape(MODEL_BUNDLES), "hash", "admin/models.py", "kept", False, False),
    KeySpec(r"persona:models:text:.+", "string", "admin/models.py", "kept", False, False),
    KeySpec(re.escape(MODEL_ACTIVE), "string", "admin/models.py", "kept", False, False),
    KeySpec(re.escape(MODEL_ACTIVATIONS), "list", "admin/models.py", "kept", False, False),
    KeySpec(re.escape(MODEL_SHADOW), "string", "admin/models.py", "kept", False, False),
)
_COMPILED = tuple((re.compile(spec.pattern + r"\Z"), spec) for spec in KEYS)


def spec_of(key: str) -> KeySpec | None:
    """The declared kind of ``key``, or ``None`` for a key Persona does not write."""
    for pattern, spec in _COMPILED:
        if pattern.match(key):
            return spec
    return None


def script_keys(visitor_id: str) -> tuple[str, str, str, str]:
    """The keys the event script touches for one person, in its KEYS order: profile, seen
    ids, log partition, consent record (one partition, computed once)."""
    prefix = tag(visitor_id)
    return (
        f"{prefix}profile:{visitor_id}",
        f"{prefix}seen:{visitor_id}",
        f"{prefix}log",
        f"{prefix}consent:{visitor_id}",
    )


def person_keys(visitor_id: str) -> tuple[str, ...]:
    """Every per-person key of one id (what an erasure of that id removes)."""
    return profile_key(visitor_id), seen_key(visitor_id), consent_key(visitor_id)


def alias_of(raw: bytes | str | None) -> str | None:
    """The profile id a stored profile record points to, if it is an alias."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.encode()
    # an alias record is written as {"alias": ...} and nothing else starts so: a profile
    # (a kilobyte of JSON, read on every decision) is not decoded here
    if not raw.startswith(b'{"alias"'):
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    target = doc.get("alias") if isinstance(doc, dict) else None
    return target if isinstance(target, str) else None


async def follow_alias(
    visitor_id: str, read: Callable[[str], Awaitable[Any]], links: int = ALIAS_MAX_DEPTH
) -> tuple[str, Any]:
    """The profile id a visitor resolves to and its stored record, following aliases.

    ``read(key)`` returns a profile key's stored value. At most ``links``
    (:data:`ALIAS_MAX_DEPTH`) links are followed; past that (or in a cycle) the
    last record read is returned as it is, which no reader takes for a profile.
    """
    current = visitor_id
    raw = await read(profile_key(current))
    seen = {current}
    for _ in range(links):
        target = alias_of(raw)
        if target is None or target in seen:
            break
        seen.add(target)
        current = target
        raw = await read(profile_key(current))
    return current, raw


def describe() -> str:
    """The key layout as a Markdown table (docs/architecture.md shows it)."""
    lines = [
        "| key | type | written by | expiry | personal | per person |",
        "|---|---|---|---|---|---|",
    ]
    for s in KEYS:
        shown = s.pattern.replace("\\", "").replace("[A-Za-z0-9_-]{16,64}", "<id>")
        shown = shown.replace("[0-9]{2}", "NN").replace(".+", "<version>")
        lines.append(
            f"| `{shown}` | {s.type} | {s.owner} | {s.expiry} | "
            f"{'yes' if s.personal else 'no'} | {'yes' if s.per_person else 'no'} |"
        )
    return "\n".join(lines)

"""The deterministic visitor-id scheme shared by the seeder and the generators."""

from __future__ import annotations

import hashlib

SEED_PREFIX = "bench"
ID_LENGTH = 22
META_KEY = "loadtests:seed"
"""Redis key where the seeder records what it wrote (count, prefix, seed, anchor)."""


def seeded_visitor_id(index: int, prefix: str = SEED_PREFIX) -> str:
    """The id of seeded visitor ``index``: ``prefix`` + hex digits of a hash of the index,
    22 characters (random-looking, as strong as a server-side visitor id must be)."""
    width = ID_LENGTH - len(prefix)
    if width < 8 or index < 0:
        raise ValueError(f"no {ID_LENGTH}-character id for index {index} after {prefix!r}")
    digest = hashlib.blake2b(f"{prefix}:{index}".encode(), digest_size=16).hexdigest()
    return f"{prefix}{digest[:width]}"

"""The deterministic visitor-id scheme shared by the seeder and the generators."""

from __future__ import annotations

SEED_PREFIX = "bench"
ID_LENGTH = 22
META_KEY = "loadtests:seed"
"""Redis key where the seeder records what it wrote (count, prefix, seed, anchor)."""


def seeded_visitor_id(index: int, prefix: str = SEED_PREFIX) -> str:
    """The id of seeded visitor ``index``: ``prefix`` + zero-padded index, 22 characters."""
    width = ID_LENGTH - len(prefix)
    if width < 1 or index < 0 or index >= 10**width:
        raise ValueError(f"index {index} does not fit a {ID_LENGTH}-character id after {prefix!r}")
    return f"{prefix}{index:0{width}d}"

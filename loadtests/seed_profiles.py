"""Write N realistic visitor profiles into a Redis, fast and reproducibly.

Profiles come from the training simulator (``models.simulator``): each visitor
gets ~60 days of simulated sessions applied with ``models.profiles``, exactly
as tracked events would build a live profile. The simulation runs at its fixed
reference time; every timestamp is then shifted so that the history ends at
``--anchor`` (default: now), so recencies look live to the service.

Visitor ``i`` gets the id :func:`loadtests.ids.seeded_visitor_id` (``bench`` +
zero-padded index, 22 characters), so a load generator can pick known visitors
without reading Redis. Chunk ``c`` is simulated from ``default_rng([seed, c])``:
the same seed writes the same profiles whatever ``--jobs`` is.

Usage::

    python -m loadtests.seed_profiles --redis-url redis://127.0.0.1:6379/0 --count 100000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import redis

from loadtests.ids import META_KEY, SEED_PREFIX, seeded_visitor_id
from service.features.profile import Profile, empty_profile, encode_profile
from service.store.keyspace import profile_key

CHUNK = 2000
"""Visitors simulated per chunk (the unit of determinism and of parallel work)."""

PIPELINE_BATCH = 1000
DEFAULT_SEED = 20250601


@dataclass(frozen=True, slots=True)
class SeedSpec:
    """What to write."""

    count: int
    seed: int = DEFAULT_SEED
    prefix: str = SEED_PREFIX
    anchor: float = 0.0
    """Unix time the histories end at (0: the simulator's reference time)."""
    ttl_s: int = 0
    """Expiry of each profile key (0: none)."""


def shift_profile(profile: Profile, delta: float) -> Profile:
    """Move every timestamp of ``profile`` by ``delta`` seconds (in place)."""
    profile["first"] = float(profile["first"]) + delta
    profile["last"] = float(profile["last"]) + delta
    for table in ("cat", "tag"):
        for entry in profile.get(table, {}).values():
            entry[1] = float(entry[1]) + delta
    for entry in profile.get("var", {}).values():
        if entry[2]:
            entry[2] = float(entry[2]) + delta
    return profile


def simulate_chunk(seed: int, chunk: int, size: int, delta: float) -> list[bytes]:
    """Encoded profiles of one chunk of visitors (deterministic in ``seed`` and ``chunk``)."""
    from models.simulator import REFERENCE_NOW, SimParams, make_population, make_world

    rng = np.random.default_rng([seed, chunk])
    params = SimParams(new_visitor_share=0.0)
    people = make_population(size, rng, REFERENCE_NOW, world=make_world(), params=params)
    out: list[bytes] = []
    for person in people:
        profile = person.profile
        if profile is None:  # no event fell before "now": a one-view visitor
            profile = empty_profile(REFERENCE_NOW - 3600.0)
            profile.update(sessions=1, views=1)
        out.append(encode_profile(shift_profile(profile, delta)))
    return out


def _chunks(count: int) -> Iterator[tuple[int, int]]:
    for chunk, start in enumerate(range(0, count, CHUNK)):
        yield chunk, min(CHUNK, count - start)


def _write(client: redis.Redis, spec: SeedSpec, chunk: int, blobs: Sequence[bytes]) -> None:
    base = chunk * CHUNK
    for lo in range(0, len(blobs), PIPELINE_BATCH):
        pipe = client.pipeline(transaction=False)
        for offset, blob in enumerate(blobs[lo : lo + PIPELINE_BATCH], start=base + lo):
            key = profile_key(seeded_visitor_id(offset, spec.prefix))
            if spec.ttl_s > 0:
                pipe.set(key, blob, ex=spec.ttl_s)
            else:
                pipe.set(key, blob)
        pipe.execute()


def seed(redis_url: str, spec: SeedSpec, jobs: int = 1) -> dict[str, Any]:
    """Simulate and write ``spec.count`` profiles; return a summary (also stored in Redis)."""
    from models.simulator import REFERENCE_NOW

    started = time.perf_counter()
    delta = (spec.anchor - REFERENCE_NOW) if spec.anchor > 0 else 0.0
    client = redis.Redis.from_url(redis_url)
    total_bytes = 0
    work = list(_chunks(spec.count))
    try:
        if jobs <= 1:
            for chunk, size in work:
                blobs = simulate_chunk(spec.seed, chunk, size, delta)
                total_bytes += sum(map(len, blobs))
                _write(client, spec, chunk, blobs)
        else:
            with ProcessPoolExecutor(jobs) as pool:
                futures = [
                    pool.submit(simulate_chunk, spec.seed, chunk, size, delta)
                    for chunk, size in work
                ]
                for (chunk, _), future in zip(work, futures, strict=True):
                    blobs = future.result()
                    total_bytes += sum(map(len, blobs))
                    _write(client, spec, chunk, blobs)
        summary: dict[str, Any] = {
            "count": spec.count,
            "prefix": spec.prefix,
            "seed": spec.seed,
            "anchor": spec.anchor or REFERENCE_NOW,
            "mean_profile_bytes": round(total_bytes / max(spec.count, 1), 1),
            "seconds": round(time.perf_counter() - started, 2),
        }
        client.set(META_KEY, orjson.dumps(summary))
    finally:
        client.close()
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m loadtests.seed_profiles",
        description="Write N simulated visitor profiles (ids bench000...0<i>) into Redis.",
    )
    p.add_argument("--redis-url", required=True, help="e.g. redis://127.0.0.1:6379/0")
    p.add_argument("--count", type=int, default=100_000, help="profiles to write (100000)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="simulation seed")
    p.add_argument("--prefix", default=SEED_PREFIX, help="visitor-id prefix ('bench')")
    p.add_argument(
        "--anchor",
        type=float,
        default=None,
        help="Unix time the histories end at (default: now; 0: the simulator's reference time)",
    )
    p.add_argument("--ttl", type=int, default=0, help="expiry of each key in seconds (0: none)")
    p.add_argument("--jobs", type=int, default=1, help="simulator processes (1)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    anchor = time.time() if args.anchor is None else args.anchor
    spec = SeedSpec(args.count, args.seed, args.prefix, anchor, args.ttl)
    summary = seed(args.redis_url, spec, args.jobs)
    print(orjson.dumps(summary).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())

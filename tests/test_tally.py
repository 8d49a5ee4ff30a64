"""Tallies give Prometheus exactly what direct observations would, once flushed."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from service.metrics import LATENCY_BUCKETS
from service.tally import Tallies, flush_every


def _pair() -> tuple[CollectorRegistry, Histogram, Counter]:
    registry = CollectorRegistry()
    histogram = Histogram("t_seconds", "t", ["stage"], buckets=LATENCY_BUCKETS, registry=registry)
    counter = Counter("t_total", "t", ["kind"], registry=registry)
    return registry, histogram, counter


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def _same(tallied: CollectorRegistry, direct: CollectorRegistry) -> None:
    got, want = _samples(tallied), _samples(direct)
    assert got.keys() == want.keys()
    for name, value in want.items():
        if name.startswith("t_seconds_sum"):  # summed in a different order
            assert got[name] == pytest.approx(value, rel=1e-12)
        else:
            assert got[name] == value, name


def test_flushed_tallies_expose_the_same_series_as_direct_observations() -> None:
    direct, d_hist, d_count = _pair()
    tallied, t_hist, t_count = _pair()
    tallies = Tallies()
    stage = tallies.histogram(t_hist.labels("redis"))
    hits = tallies.counter(t_count.labels("hit"))
    rng = random.Random(3)
    # bucket bounds themselves (a value equal to a bound falls in that bucket),
    # values past the last finite bound, zero, and random sub-millisecond ones
    values = [*LATENCY_BUCKETS, 0.0, 3.0, 120.0] + [rng.uniform(0, 0.004) for _ in range(500)]
    for i, v in enumerate(values):
        d_hist.labels("redis").observe(v)
        stage.observe(v)
        if i % 3 == 0:
            d_count.labels("hit").inc()
            hits.inc()
        if i == 250:
            tallies.flush()  # a flush midway changes nothing in the totals
    assert _samples(tallied) != _samples(direct)  # not yet flushed
    tallies.flush()
    _same(tallied, direct)
    tallies.flush()  # nothing new: nothing added twice
    _same(tallied, direct)


def test_flush_every_flushes_periodically_and_once_more_at_stop() -> None:
    registry, _hist, counter = _pair()
    tallies = Tallies()
    hits = tallies.counter(counter.labels("hit"))

    def count() -> float | None:
        return registry.get_sample_value("t_total", {"kind": "hit"})

    async def scenario() -> tuple[float | None, float | None]:
        stop = asyncio.Event()
        task = asyncio.create_task(flush_every(tallies, 0.05, stop))
        hits.inc()
        await asyncio.sleep(0.2)
        periodic = count()
        hits.inc()
        stop.set()
        await task
        return periodic, count()

    periodic, final = asyncio.run(scenario())
    assert periodic == 1.0
    assert final == 2.0

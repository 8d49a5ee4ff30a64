"""The events benchmark: ingestion rate and acknowledgement latency, open loop.

    .venv/bin/python -m loadtests.bench_events [--quick]

Batches of 20 events and single-event requests against one worker with its
own Redis (AOF on); each rate is stepped up until it is no longer achieved
with 0 errors and p99 < 20 ms; then the acknowledgement latency at half the
single-event saturation rate. Results are printed as JSON; docs/benchmarks.md
quotes them with the date and the command.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from loadtests.bench_decide import start_persona
from loadtests.generator import http_request, run_sync
from service.local_redis import LocalRedis

HEADERS = {"X-Persona-Consent": "personalization"}
CATEGORIES = ["running", "hiking", "cycling", "yoga", "fitness", "camping"]


def events_factory(per_request: int) -> Any:
    """Requests carrying ``per_request`` view events of random visitors."""
    counter = itertools.count()

    def make(rng: random.Random) -> bytes:
        events = []
        for _ in range(per_request):
            n = next(counter)
            events.append(
                {
                    "type": "view",
                    "event_id": f"bench-{n:012d}",
                    "visitor_id": f"evbench{rng.randrange(50_000):015d}",
                    "category": rng.choice(CATEGORIES),
                    "page_type": "category",
                }
            )
        return http_request("POST", "/v1/events", orjson.dumps({"events": events}), HEADERS)

    return make


def step(port: int, factory: Any, rates: list[int], seconds: float) -> dict[str, Any]:
    """Highest rate achieved with 0 errors and p99 < 20 ms, with every step's figures."""
    steps, best = [], 0
    for rate in rates:
        summary = run_sync("127.0.0.1", port, factory, rate, seconds).summary()
        ok = (
            summary["errors"] == 0
            and summary["achieved_rate"] >= 0.97 * rate
            and summary["p99_us"] < 20_000
        )
        steps.append({"rate": rate, "ok": ok, **summary})
        if not ok:
            break
        best = rate
    return {"max_rate": best, "steps": steps}


def main() -> int:
    """Run the scenarios and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 4.0 if args.quick else 10.0
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="persona-evbench-") as tmp:
        redis = LocalRedis(Path(tmp) / "redis", appendonly=True)
        redis.start()
        try:
            server = start_persona(redis.url, 1, "fast", Path(tmp) / "data")
            try:
                run_sync("127.0.0.1", server.port, events_factory(1), 200, 2.0)  # warm-up
                results["batches_of_20"] = step(
                    server.port, events_factory(20), [100, 250, 400, 500, 600, 800], seconds
                )
                results["single"] = step(
                    server.port, events_factory(1), [1000, 1500, 2000, 2500, 3000], seconds
                )
                half = max(results["single"]["max_rate"] // 2, 100)
                results["single_at_half"] = run_sync(
                    "127.0.0.1", server.port, events_factory(1), half, seconds * 2
                ).summary()
            finally:
                server.stop()
        finally:
            redis.stop()
    results["events_per_s_batches"] = results["batches_of_20"]["max_rate"] * 20
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())

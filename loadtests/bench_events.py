"""The events benchmark: ingestion rate and acknowledgement latency, open loop.

    .venv/bin/python -m loadtests.bench_events [--quick]

Batches of 20 events and single-event requests against one worker with its
own Redis (AOF on); each rate is stepped up until it is no longer achieved
with 0 errors and p99 < 20 ms; then the acknowledgement latency at half the
single-event saturation rate (and of the batch saturation rate). Client-side
quantiles come from the generator, service-side ones from the service's own
histograms. The results replace the events section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from loadtests.bench_decide import API_KEY, histogram_quantiles, machine, scrape, start_persona
from loadtests.generator import http_request, run_sync
from loadtests.ids import seeded_visitor_id
from loadtests.report import (
    EVENTS_SECTION,
    EVENTS_UNPINNED_SECTION,
    render_events,
    replace_section,
)
from service.local_redis import LocalRedis
from service.settings import REPO_DIR

# the generator speaks for many visitors, as the site's server does
HEADERS = {"X-Persona-Consent": "personalization", "Authorization": f"Bearer {API_KEY}"}
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
                    "visitor_id": seeded_visitor_id(rng.randrange(50_000), "evbench"),
                    "category": rng.choice(CATEGORIES),
                    "page_type": "category",
                }
            )
        return http_request("POST", "/v1/events", orjson.dumps({"events": events}), HEADERS)

    return make


def measure(port: int, factory: Any, rate: float, seconds: float) -> dict[str, Any]:
    """One open-loop run: client figures and the service's own histograms for it."""
    before = scrape(port)
    client = run_sync("127.0.0.1", port, factory, rate, seconds).summary()
    after = scrape(port)
    return {
        "client": client,
        "service": histogram_quantiles(
            before, after, "persona_http_request_duration_seconds", 'endpoint="/v1/events"'
        ),
        "ingest": histogram_quantiles(before, after, "persona_event_ingest_duration_seconds", ""),
    }


def step(port: int, factory: Any, rates: list[int], seconds: float) -> dict[str, Any]:
    """Highest rate achieved with 0 errors and p99 < 20 ms, with every step's figures."""
    steps, best = [], 0
    for rate in rates:
        row = measure(port, factory, rate, seconds)
        c = row["client"]
        ok = c["errors"] == 0 and c["achieved_rate"] >= 0.97 * rate and c["p99_us"] < 20_000
        steps.append({"rate": rate, "ok": ok, **row})
        if not ok:
            break
        best = rate
    return {"max_rate": best, "steps": steps}


def main() -> int:
    """Run the scenarios, print the results and write them into docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(REPO_DIR / "docs" / "benchmarks.md"))
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the service to CPU 1 and the generator and Redis to CPU 0",
    )
    args = parser.parse_args()
    seconds = 4.0 if args.quick else 10.0
    all_cpus = os.sched_getaffinity(0)
    pin = not args.no_pin and len(all_cpus) >= 2
    results: dict[str, Any] = {
        "machine": machine(),
        "pinned": pin,
        "command": "python -m loadtests.bench_events" + (" --quick" if args.quick else ""),
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory(prefix="persona-evbench-") as tmp:
        redis = LocalRedis(Path(tmp) / "redis", appendonly=True)
        redis.start()
        if pin and redis.process is not None:
            os.sched_setaffinity(redis.process.pid, {0})
            os.sched_setaffinity(0, {0})
        try:
            server = start_persona(redis.url, 1, Path(tmp) / "data", {1} if pin else None)
            try:
                measure(server.port, events_factory(1), 200, 2.0)  # warm-up
                results["batches_of_20"] = step(
                    server.port,
                    events_factory(20),
                    [250, 400, 500, 600, 700, 800, 1000],
                    seconds,
                )
                results["single"] = step(
                    server.port,
                    events_factory(1),
                    [1000, 1500, 2000, 2500, 3000, 3500, 4000],
                    seconds,
                )
                half = max(results["single"]["max_rate"] // 2, 100)
                results["single_at_half"] = {
                    "rate": half,
                    **measure(server.port, events_factory(1), half, seconds * 3),
                }
                half20 = max(results["batches_of_20"]["max_rate"] // 2, 50)
                results["batches_at_half"] = {
                    "rate": half20,
                    **measure(server.port, events_factory(20), half20, seconds * 3),
                }
            finally:
                server.stop()
        finally:
            redis.stop()
    os.sched_setaffinity(0, all_cpus)
    results["events_per_s_batches"] = results["batches_of_20"]["max_rate"] * 20
    out_dir = REPO_DIR / "loadtests" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"events-{time.strftime('%Y%m%dT%H%M%S')}.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2)
    )
    out = Path(args.out)
    page = out.read_text() if out.exists() else ""
    name = EVENTS_SECTION if pin else EVENTS_UNPINNED_SECTION
    out.write_text(replace_section(page, name, render_events(results)))
    print(orjson.dumps({k: v for k, v in results.items() if k != "machine"}).decode())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())

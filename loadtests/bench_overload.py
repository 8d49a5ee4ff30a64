"""The overload benchmark: twice the saturation rate for 20 s, shedding on and off.

    .venv/bin/python -m loadtests.bench_overload            # full run (~8 minutes)
    .venv/bin/python -m loadtests.bench_overload --quick    # smoke run

For 1 worker (pinned to CPU 1, the generator and Redis on CPU 0, as in
bench_decide) and 2 workers: the saturation rate is found by stepping an
open-loop rate (the same rule as bench_decide), then the service is offered
twice that rate for 20 s, once as configured (shedding past a 20 ms event-loop
lag) and once with shedding off (a budget no lag reaches), each on a fresh
service. What matters: no answer other than 2xx, the client's p99, and the
rate of answers the policy decided (not a fallback) beside the saturation
rate. The figures replace the "overload" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loadtests.bench_decide import (
    decide_factory,
    histogram_quantiles,
    machine,
    saturation,
    scrape,
    start_persona,
)
from loadtests.generator import Result, run_sync
from loadtests.report import replace_section, save_result
from loadtests.seed_profiles import SeedSpec, seed
from service.local_redis import LocalRedis
from service.settings import REPO_DIR

SECTION = "overload"
GENERATOR_NICE = -5
REDIS_NICE = -10
SHEDDING_OFF_MS = (
    "10000"  # the longest budget allowed: no lag below the 5 s client timeout reaches it
)
RATES = [500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 3500, 4000, 5000]


@contextlib.contextmanager
def ahead_of_the_service() -> Iterator[None]:
    """Run the generator at a higher priority than the service it measures (it stands in for
    clients on other machines, which an overloaded service cannot slow down)."""
    os.setpriority(os.PRIO_PROCESS, 0, GENERATOR_NICE)
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, 0)


def _total(samples: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in samples.items() if k.startswith(prefix))


def offered(server: Any, factory: Any, rate: float, duration: float) -> dict[str, Any]:
    """``rate`` for ``duration`` seconds: the client's view and the service's counts."""
    before = scrape(server.port)
    result: Result = run_sync("127.0.0.1", server.port, factory, rate, duration)
    time.sleep(1.5)  # every worker has flushed its tallies
    after = scrape(server.port)

    def delta(prefix: str) -> float:
        return _total(after, prefix) - _total(before, prefix)

    decisions = delta("persona_decisions_total")
    fallbacks = delta("persona_fallbacks_total")
    shed = delta('persona_overload_shed_total{endpoint="decide"}')
    return {
        "rate": rate,
        "client": result.summary(),
        "non_2xx": result.non_2xx,
        "transport_errors": result.errors,
        "service": histogram_quantiles(
            before, after, "persona_http_request_duration_seconds", 'endpoint="/v1/decide"'
        ),
        "decisions": decisions,
        "shed": shed,
        "fallbacks": fallbacks,
        "personalized_per_s": round((decisions - fallbacks) / duration, 1),
    }


def scenario(
    redis_url: str,
    workers: int,
    folder: Path,
    factory: Any,
    step_s: float,
    duration: float,
    pin: bool,
) -> dict[str, Any]:
    """Saturation, then twice it with shedding on and off, for ``workers`` workers."""
    all_cpus = os.sched_getaffinity(0)
    one = pin and workers == 1
    os.sched_setaffinity(0, {0} if one else all_cpus)
    cpus = {1} if one else None
    out: dict[str, Any] = {"workers": workers}
    server = start_persona(redis_url, workers, folder / "sat", cpus)
    try:
        with ahead_of_the_service():
            run_sync("127.0.0.1", server.port, factory, 500, 3.0)  # warm-up
            sat = saturation(server, factory, RATES, step_s)
    finally:
        server.stop()
    out["saturation"] = sat["max_rate"]
    out["steps"] = [
        {"rate": s["rate"], "ok": s["ok"], "p99_us": s["client"]["p99_us"]} for s in sat["steps"]
    ]
    rate = 2 * max(sat["max_rate"], RATES[0])
    for mode, budget in (("shedding", None), ("queueing", SHEDDING_OFF_MS)):
        extra = {"PERSONA_OVERLOAD_LAG_MS": budget} if budget else None
        server = start_persona(redis_url, workers, folder / mode, cpus, extra)
        try:
            with ahead_of_the_service():
                run_sync("127.0.0.1", server.port, factory, 500, 3.0)
                out[mode] = offered(server, factory, rate, duration)
        finally:
            server.stop()
    os.sched_setaffinity(0, all_cpus)
    return out


def render(r: dict[str, Any]) -> str:
    """The markdown section."""
    m = r["machine"]
    lines = [
        "## Overload: twice the saturation rate",
        "",
        f"Measured with `.venv/bin/python -m {r['command']}` on {r['date']} "
        f"({m['cpus']} vCPU, {m['cpu']}, Python {m['python']}, Redis {m['redis']}). "
        f"{r['profiles']:,} seeded profiles; the decide request mix of bench_decide; "
        f"{r['duration_s']:g} s at twice the saturation rate after a warm-up, each mode on a "
        "fresh service. Redis (nice -10) and the generator (nice -5) run ahead of the "
        "service, standing in for their own machines. *Shedding*: as configured "
        "(`PERSONA_OVERLOAD_LAG_MS=20`); "
        "*queueing*: shedding off. *Decided/s*: answers the policy decided (not a fallback); "
        "the target is at least 80 % of the saturation rate.",
        "",
        "| workers | saturation/s | offered/s | mode | non-2xx | transport errors | "
        "client p50 µs | client p99 µs | client p99.9 µs | service p99 µs | shed | "
        "decided/s | decided / saturation |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r["scenarios"]:
        for mode in ("shedding", "queueing"):
            row = s[mode]
            c = row["client"]
            share = row["personalized_per_s"] / s["saturation"] if s["saturation"] else 0.0
            lines.append(
                f"| {s['workers']} | {s['saturation']:,} | {row['rate']:,} | {mode} | "
                f"{row['non_2xx']} | {row['transport_errors']} | {c['p50_us']:,} | "
                f"{c['p99_us']:,} | {c['p999_us']:,} | {row['service']['p99_us']:,} | "
                f"{int(row['shed']):,} | {row['personalized_per_s']:,} | {share:.0%} |"
            )
    lines += [
        "",
        "The generator runs on the same 2 vCPUs as the service; with 2 workers they share "
        "both cores, so the 2-worker saturation is not twice the 1-worker one.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run both scenarios and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short runs, 10,000 profiles")
    parser.add_argument("--out", default=str(REPO_DIR / "docs" / "benchmarks.md"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    duration = 5.0 if args.quick else 20.0
    step = 4.0 if args.quick else 8.0
    results: dict[str, Any] = {
        "machine": machine(),
        "profiles": count,
        "duration_s": duration,
        "command": "loadtests.bench_overload" + (" --quick" if args.quick else ""),
        "date": time.strftime("%Y-%m-%d"),
        "scenarios": [],
    }
    with tempfile.TemporaryDirectory(prefix="persona-overload-") as tmp:
        redis = LocalRedis(Path(tmp) / "redis", appendonly=True)
        redis.start()
        pin = len(os.sched_getaffinity(0)) >= 2
        assert redis.process is not None
        # Redis stands in for a server of its own: the service's overload must not starve it
        os.setpriority(os.PRIO_PROCESS, redis.process.pid, REDIS_NICE)
        if pin:
            os.sched_setaffinity(redis.process.pid, {0})
        try:
            seed(redis.url, SeedSpec(count, anchor=time.time()), jobs=2)
            factory = decide_factory(count)
            for workers in args.workers:
                row = scenario(redis.url, workers, Path(tmp) / f"w{workers}", factory, step,
                               duration, pin)  # fmt: skip
                results["scenarios"].append(row)
                print(row, flush=True)
        finally:
            redis.stop()
    save_result("overload", results)
    out = Path(args.out)
    out.write_text(replace_section(out.read_text(), SECTION, render(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The decide benchmark: one command, its own Redis and service, results in docs/benchmarks.md.

    .venv/bin/python -m loadtests.bench_decide            # full run (~10 minutes)
    .venv/bin/python -m loadtests.bench_decide --quick    # smoke run

Scenarios: Persona with one worker at 1,000 decisions/s (open loop), saturation
with 1 and 2 workers (stepped open-loop rates), and the trivial aiohttp floor
measured in the same run. The figures replace the "decide" section of
docs/benchmarks.md.
Service-side quantiles come from the service's own histogram (the delta of
/metrics over the run, interpolated within buckets).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from loadtests.generator import Result, http_request, run_sync
from loadtests.ids import seeded_visitor_id
from loadtests.seed_profiles import SeedSpec, seed
from service.local_redis import LocalRedis, free_port
from service.settings import REPO_DIR

SECRET = "bench-secret-" + "x" * 32
CONTEXTS = [
    {"page_type": "home", "device": "mobile"},
    {"page_type": "home", "device": "desktop"},
    {"page_type": "category", "category": "running", "device": "desktop"},
    {"page_type": "product", "category": "hiking", "device": "mobile", "referrer": "search"},
]
API_KEY = "bench-api-key-" + "k" * 32
# the generator speaks for many visitors, as the site's server does
HEADERS = {"X-Persona-Consent": "personalization", "Authorization": f"Bearer {API_KEY}"}


def decide_factory(known: int, unknown_share: float = 0.2) -> Any:
    """Requests for random known (seeded) and unknown visitors, 10-variant slot."""

    def make(rng: random.Random) -> bytes:
        if rng.random() < unknown_share:
            vid = f"unknown{rng.randrange(10**15):015d}"
        else:
            vid = seeded_visitor_id(rng.randrange(known))
        body = orjson.dumps(
            {"placements": ["home-hero"], "visitor_id": vid, "context": rng.choice(CONTEXTS)}
        )
        return http_request("POST", "/v1/decide", body, HEADERS)

    return make


def floor_factory(rng: random.Random) -> bytes:
    """The same request to the floor app."""
    return http_request("POST", "/v1/decide", b'{"placements":["home-hero"]}')


@dataclass
class Server:
    """A server subprocess on a port."""

    proc: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        """Terminate and wait."""
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait_http(port: int, path: str, timeout_s: float = 120) -> None:
    """Poll until ``path`` answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port}{path} not ready")


def _pin(cpus: set[int] | None) -> Any:
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def start_persona(
    redis_url: str,
    workers: int,
    data_dir: Path,
    cpus: set[int] | None = None,
    extra_env: dict[str, str] | None = None,
    cwd: Path = REPO_DIR,
) -> Server:
    """Start ``python -m service`` from the code in ``cwd`` (optionally pinned to ``cpus``,
    with more settings)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_")}
    env.update(
        PERSONA_REDIS_URL=redis_url,
        PERSONA_PORT=str(port),
        PERSONA_WORKERS=str(workers),
        PERSONA_COOKIE_SECRETS=SECRET,
        PERSONA_API_KEYS=API_KEY,
        PERSONA_DATA_DIR=str(data_dir),
        PERSONA_LOG_LEVEL="warning",
        PERSONA_CACHE_DIR=str(REPO_DIR / ".persona" / "cache"),
    )
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_pin(cpus),
    )
    wait_http(port, "/readyz")
    return Server(proc, port)


def start_floor(cpus: set[int] | None = None) -> Server:
    """Start the trivial aiohttp app."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtests.floor_app", "--port", str(port)],
        cwd=REPO_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_pin(cpus),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(
                urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/decide", data=b"{}", method="POST"
                ),
                timeout=1,
            )
            return Server(proc, port)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("floor app did not start")


def scrape(port: int) -> dict[str, float]:
    """The service's metric samples as {series: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def histogram_quantiles(
    before: dict[str, float], after: dict[str, float], metric: str, label: str
) -> dict[str, float]:
    """p50/p99/p999 (µs) of a histogram's increase between two scrapes."""
    buckets: list[tuple[float, float]] = []
    for name, value in after.items():
        if name.startswith(metric + "_bucket{") and label in name:
            le = name.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets.append((bound, value - before.get(name, 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    out: dict[str, float] = {"count": total}
    for q, key in ((0.5, "p50_us"), (0.99, "p99_us"), (0.999, "p999_us")):
        rank = q * total
        lower_bound, lower_count = 0.0, 0.0
        value = float("nan")
        for bound, count in buckets:
            if count >= rank and total > 0:
                if bound == float("inf"):
                    value = lower_bound
                else:
                    width = count - lower_count
                    frac = (rank - lower_count) / width if width > 0 else 1.0
                    value = lower_bound + (bound - lower_bound) * frac
                break
            lower_bound, lower_count = bound, count
        out[key] = round(value * 1e6)
    return out


def measure(
    server: Server, factory: Any, rate: float, duration: float, with_service: bool = True
) -> dict[str, Any]:
    """One open-loop run, with the service-side histogram delta."""
    before = scrape(server.port) if with_service else {}
    result: Result = run_sync("127.0.0.1", server.port, factory, rate, duration)
    row: dict[str, Any] = {"client": result.summary()}
    if with_service:
        after = scrape(server.port)
        row["service"] = histogram_quantiles(
            before, after, "persona_http_request_duration_seconds", 'endpoint="/v1/decide"'
        )
        row["stages"] = {
            stage: histogram_quantiles(
                before, after, "persona_decide_stage_duration_seconds", f'stage="{stage}"'
            )
            for stage in ("identify", "redis", "features", "score", "serialize")
        }
        fallbacks = sum(
            v - before.get(k, 0.0)
            for k, v in after.items()
            if k.startswith("persona_fallbacks_total")
        )
        row["fallbacks"] = fallbacks
    return row


def saturation(
    server: Server, factory: Any, rates: list[int], step_s: float, with_service: bool = True
) -> dict[str, Any]:
    """Step the open-loop rate up; the last step kept.

    A step is kept when at least 97 % of its rate was achieved with 0 errors,
    client p99 under 20 ms and at least 97 % of the decisions personalized:
    defaults served because Redis answered late are cheap, and would
    otherwise count as throughput the service did not really have.
    """
    steps = []
    best = 0
    for rate in rates:
        row = measure(server, factory, rate, step_s, with_service)
        c = row["client"]
        ok = (
            c["errors"] == 0
            and c["achieved_rate"] >= 0.97 * rate
            and c["p99_us"] < 20_000
            and row.get("fallbacks", 0.0) <= 0.03 * c["requests"]
        )
        steps.append({"rate": rate, "ok": ok, **row})
        if not ok:
            break
        best = rate
    return {"max_rate": best, "steps": steps}


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()[2]
    libs = ", ".join(
        f"{p} {metadata.version(p)}"
        for p in (
            "aiohttp",
            "uvloop",
            "redis",
            "hiredis",
            "orjson",
            "lightgbm",
            "lleaves",
            "msgspec",
        )
    )
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": redis_version,
        "libraries": libs,
    }


def main() -> int:
    """Run every scenario and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short runs, 10,000 profiles")
    parser.add_argument("--out", default=str(REPO_DIR / "docs" / "benchmarks.md"))
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the 1-worker service to CPU 1 and the generator and Redis to CPU 0",
    )
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    duration = 5.0 if args.quick else 30.0
    step = 4.0 if args.quick else 10.0
    results: dict[str, Any] = {
        "machine": machine(),
        "profiles": count,
        "duration_s": duration,
        "command": "python -m loadtests.bench_decide" + (" --quick" if args.quick else ""),
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory(prefix="persona-bench-") as tmp:
        redis = LocalRedis(Path(tmp) / "redis", appendonly=True)
        redis.start()
        all_cpus = os.sched_getaffinity(0)
        pin = not args.no_pin and len(all_cpus) >= 2
        results["pinned"] = pin
        if pin and redis.process is not None:
            os.sched_setaffinity(redis.process.pid, {0})
        try:
            t = time.monotonic()
            summary = seed(redis.url, SeedSpec(count, anchor=time.time()), jobs=2)
            results["seed"] = {**summary, "seconds": round(time.monotonic() - t, 1)}
            factory = decide_factory(count)
            for workers in (1, 2):
                one = pin and workers == 1
                os.sched_setaffinity(0, {0} if one else all_cpus)
                server = start_persona(
                    redis.url, workers, Path(tmp) / f"d{workers}", {1} if one else None
                )
                try:
                    measure(server, factory, 500, 3.0)  # warm-up
                    if workers == 1:
                        results["persona_1000"] = measure(server, factory, 1000, duration)
                    rates = [1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 6000, 7000]
                    results[f"saturation_{workers}w"] = saturation(server, factory, rates, step)
                finally:
                    server.stop()
        finally:
            redis.stop()
    os.sched_setaffinity(0, {0} if pin else all_cpus)
    floor = start_floor({1} if pin else None)
    try:
        measure(floor, floor_factory, 500, 3.0, with_service=False)
        results["floor_1000"] = measure(floor, floor_factory, 1000, duration, with_service=False)
        results["floor_saturation"] = saturation(
            floor, floor_factory, [3000, 5000, 7000, 9000, 11000], step, with_service=False
        )
    finally:
        floor.stop()
    out_dir = REPO_DIR / "loadtests" / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (out_dir / f"decide-{stamp}.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2)
    )
    from loadtests.report import DECIDE_SECTION, render, replace_section

    out = Path(args.out)
    out.write_text(replace_section(out.read_text(), DECIDE_SECTION, render(results)))
    print(orjson.dumps({k: v for k, v in results.items() if k != "machine"}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training time on 1,000,000 logged decisions, written to docs/model-quality.md.

Writes a synthetic decision log into a private Redis — decisions of the
offline simulator's visitors (profiles with two months of history) in the
exact entry format the service logs (``service.decide.record.entry``), spread
over six days across the log partitions, with their clicks — then times the
real ``persona train`` command on it: reading the log, rebuilding every shown
variant's row with the serving feature builder, LightGBM with early stopping,
writing the bundle. Peak memory is the command's maximum resident set size.

    python -m loadtests.bench_train                # 1,000,000 decisions (~3 minutes)
    python -m loadtests.bench_train --quick        # 100,000 decisions
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis

from loadtests.bench_decide import machine
from loadtests.report import save_result, write_section
from models.simulator import click_probability, draw_context, make_population, make_world
from service.decide.record import entry
from service.decide.types import Decision
from service.local_redis import LocalRedis
from service.settings import REPO_DIR
from service.store.keyspace import log_key, partition

SECTION = "train"
DAYS = 6.0
TARGET_S = 300.0


def write_log(url: str, decisions: int, visitors: int, seed: int) -> dict[str, Any]:
    """Write ``decisions`` logged decisions (uniform exploration) and their clicks."""
    rng = np.random.default_rng(seed)
    world = make_world()
    start = time.time() - DAYS * 86400
    clock = time.monotonic()
    people = make_population(visitors, rng, start, world=world)
    population_s = time.monotonic() - clock
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    clicks = 0
    clock = time.monotonic()
    for i in range(decisions):
        vi = int(rng.integers(len(people)))
        visitor, vid = people[vi], f"train-bench-{vi:08d}"
        placement = world.placements[int(rng.integers(len(world.placements)))]
        ctx = draw_context(visitor, placement, world, rng)
        now = start + i * (DAYS * 86400 / decisions)
        n = len(placement.variants)
        shown = placement.variants[int(rng.integers(n))]
        decision = Decision(
            placement=placement.name,
            decision_id=f"{i:027x}",
            variant_id=shown.id,
            content=None,
            policy="explore",
            fallback=None,
            propensity=1.0 / n,
            model_version="bench",
            candidates=tuple((v.id, 0.0) for v in placement.variants),
        )
        logged = entry(decision, ctx, visitor.profile, now, world.catalog.version, 1.0)
        key = log_key(partition(vid))
        pipe.xadd(key, {"v": vid, "e": orjson.dumps(logged)})
        if rng.random() < click_probability(visitor, shown, ctx, visitor.profile, now):
            clicks += 1
            click = {
                "type": "click",
                "event_id": f"click-{i:012d}",
                "decision_id": decision.decision_id,
                "placement": placement.name,
                "variant_id": shown.id,
                "timestamp": now + 5.0,
            }
            pipe.xadd(key, {"v": vid, "e": orjson.dumps(click)})
        if i % 2000 == 1999:
            pipe.execute()
            print(f"\rwrote {i + 1:,} decisions", end="", file=sys.stderr)
    pipe.execute()
    print(file=sys.stderr)
    memory = int(client.info("memory")["used_memory"])
    client.close()
    return {
        "decisions": decisions,
        "clicks": clicks,
        "visitors": visitors,
        "population_s": round(population_s, 1),
        "write_s": round(time.monotonic() - clock, 1),
        "redis_used_memory_mb": round(memory / 2**20),
    }


def time_train(url: str, out: Path) -> dict[str, Any]:
    """Run ``persona train`` on the log; its wall time, peak memory and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_")}
    env["PERSONA_REDIS_URL"] = url
    clock = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "service", "train", "--out", str(out), "--days", str(DAYS + 1)],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - clock
    if done.returncode != 0:
        raise RuntimeError(f"persona train failed: {done.stderr}")
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "output": done.stdout.strip().splitlines(),
        "metrics": manifest["metrics"],
        "num_trees": manifest["num_trees"],
    }


def render(r: dict[str, Any], command: str) -> str:
    """The docs/model-quality.md section."""
    log, train, m = r["log"], r["train"], r["machine"]
    verdict = "met" if train["seconds"] < TARGET_S else "NOT met"
    lines = [
        f"Measured {r['date']} with `{command}` on {m['cpus']} x {m['cpu']}, "
        f"Python {m['python']}, Redis {m['redis']}, {m['libraries']}.",
        "",
        f"A log of {log['decisions']:,} decisions by {log['visitors']:,} simulated visitors "
        f"over {DAYS:.0f} days with {log['clicks']:,} clicks, in the service's entry format "
        f"({log['redis_used_memory_mb']:,} MB in Redis).",
        "",
        "| step | result |",
        "|---|---|",
        f"| `persona train` wall time | **{train['seconds']:.1f} s** "
        f"(target < {TARGET_S:.0f} s: {verdict}) |",
        f"| peak memory of the command | {train['peak_rss_mb']:,} MB |",
        f"| trees (early stopping) | {train['num_trees']} |",
        f"| validation | AUC {train['metrics']['valid_auc']:.4f}, "
        f"log loss {train['metrics']['valid_logloss']:.4f} |",
        "",
        "The command said:",
        "",
        "```",
        *train["output"],
        "```",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Write the log, time training, update docs/model-quality.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="100,000 decisions")
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--visitors", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", default=str(REPO_DIR / "docs" / "model-quality.md"))
    args = parser.parse_args()
    decisions, visitors = (100_000, 10_000) if args.quick else (args.decisions, args.visitors)
    command = "python -m loadtests.bench_train" + (" --quick" if args.quick else "")
    with tempfile.TemporaryDirectory(prefix="persona-train-") as tmp:
        server = LocalRedis(Path(tmp) / "redis", appendonly=False)
        server.start()
        try:
            log = write_log(server.url, decisions, visitors, args.seed)
            train = time_train(server.url, Path(tmp) / "bundle")
        finally:
            server.stop()
    result = {"log": log, "train": train, "machine": machine(), "date": time.strftime("%Y-%m-%d")}
    save_result("train", result)
    write_section(Path(args.out), SECTION, "## Training time", render(result, command))
    print(render(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

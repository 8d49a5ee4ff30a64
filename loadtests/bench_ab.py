"""A/B of the decision path: two versions of the code, alternated in one sitting.

    .venv/bin/python -m loadtests.bench_ab --before 9259123 [--after HEAD] [--rounds 3]

Each version runs from its own git worktree (the working tree for "after" by
default) on the same interpreter, against one Redis seeded once with the same
profiles, pinned to CPU 1 (Redis and the generator on CPU 0). The versions
alternate (A, B, A, B, ...) so the VM's drift falls on both. Per run: service
p50/p99 from the service's own histogram, client p50/p99 from the open-loop
generator, and the service's CPU time per request (from /proc). The table goes
into docs/benchmarks.md under "A/B".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loadtests.bench_decide import decide_factory, machine, measure, start_persona
from loadtests.report import replace_section, save_result
from loadtests.seed_profiles import SeedSpec, seed
from service.local_redis import LocalRedis
from service.settings import REPO_DIR

SECTION = "decide-ab-{before}"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextlib.contextmanager
def worktree(ref: str | None) -> Iterator[Path]:
    """The code of ``ref`` checked out in a temporary worktree (the working tree for None)."""
    if ref is None:
        yield REPO_DIR
        return
    folder = Path(tempfile.mkdtemp(prefix="persona-ab-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(folder), ref],
        cwd=REPO_DIR,
        check=True,
        capture_output=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(folder)], cwd=REPO_DIR, check=False
        )


def run_once(code: Path, redis_url: str, factory: Any, rate: int, seconds: float) -> dict[str, Any]:
    """Start the service from ``code``, warm it, measure one run at ``rate``."""
    with tempfile.TemporaryDirectory(prefix="persona-ab-data-") as data:
        server = start_persona(redis_url, 1, Path(data), {1}, cwd=code)
        try:
            measure(server, factory, 500, 3.0)
            cpu = cpu_seconds(server.proc.pid)
            row = measure(server, factory, rate, seconds)
            used = cpu_seconds(server.proc.pid) - cpu
        finally:
            server.stop()
    requests = row["client"]["requests"]
    row["cpu_per_request_us"] = round(used / requests * 1e6) if requests else None
    return row


def render(result: dict[str, Any]) -> str:
    """The section for docs/benchmarks.md."""
    lines = [
        f"### A/B: {result['refs']['before']} against {result['refs']['after']}",
        "",
        f"Command: `{result['command']}` — {result['when']}, {result['machine']['cpu']}, "
        f"{result['profiles']:,} profiles, {result['rate']:,}/s for {result['seconds']:g} s "
        "per run, versions alternated, service pinned to CPU 1.",
        "",
        "| run | version | service p50 µs | service p99 µs | client p50 µs | client p99 µs "
        "| CPU µs/request | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, run in enumerate(result["runs"], 1):
        s, c = run["service"], run["client"]
        lines.append(
            f"| {i} | {run['label']} | {s['p50_us']:,} | {s['p99_us']:,} | {c['p50_us']:,} "
            f"| {c['p99_us']:,} | {run['cpu_per_request_us']} | {c['errors']} |"
        )
    lines.append("")
    for label in ("before", "after"):
        runs = [r for r in result["runs"] if r["label"] == label]
        p50 = statistics.median(r["service"]["p50_us"] for r in runs)
        cpu = statistics.median(r["cpu_per_request_us"] for r in runs)
        lines.append(
            f"- {label} ({result['refs'][label]}): median service p50 {p50:,.0f} µs, "
            f"median CPU {cpu:,.0f} µs per request"
        )
    return "\n".join(lines)


def main() -> int:
    """Run the A/B and write the section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", required=True, help="git ref of version A")
    parser.add_argument("--after", help="git ref of version B (default: the working tree)")
    parser.add_argument("--label", help="what version B is, for the page (default: its ref)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--out", default=str(REPO_DIR / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    refs = {"before": args.before, "after": args.label or args.after or "the working tree"}
    result: dict[str, Any] = {
        "command": "python -m loadtests.bench_ab --before "
        + args.before
        + (f" --after {args.after}" if args.after else "")
        + f" --rounds {args.rounds} --rate {args.rate} --seconds {args.seconds:g}",
        "when": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "profiles": args.profiles,
        "rate": args.rate,
        "seconds": args.seconds,
        "refs": refs,
        "runs": [],
    }
    all_cpus = os.sched_getaffinity(0)
    with (
        tempfile.TemporaryDirectory(prefix="persona-ab-") as tmp,
        worktree(args.before) as before,
        worktree(args.after) as after,
    ):
        redis = LocalRedis(Path(tmp) / "redis", appendonly=True)
        redis.start()
        try:
            if redis.process is not None:
                os.sched_setaffinity(redis.process.pid, {0})
            seed(redis.url, SeedSpec(args.profiles, anchor=time.time()), jobs=2)
            os.sched_setaffinity(0, {0})
            factory = decide_factory(args.profiles)
            for _ in range(args.rounds):
                for label, code in (("before", before), ("after", after)):
                    row = run_once(code, redis.url, factory, args.rate, args.seconds)
                    result["runs"].append({"label": label, **row})
                    print(label, row["service"]["p50_us"], row["cpu_per_request_us"], flush=True)
        finally:
            os.sched_setaffinity(0, all_cpus)
            redis.stop()
    save_result("decide-ab", result)
    write(Path(args.out), result)
    print(render(result))
    return 0


def write(out: Path, result: dict[str, Any]) -> None:
    """Put the run's section into ``out`` (one section per 'before' version)."""
    name = SECTION.format(before=result["refs"]["before"])
    out.write_text(replace_section(out.read_text(), name, render(result)))


if __name__ == "__main__":
    raise SystemExit(main())

"""Render benchmark results into docs/benchmarks.md.

The decide benchmark writes the whole page; the events benchmark owns one
marked section of it, which a decide run keeps as it was. The learning-loop
benchmarks write their own sections of docs/model-quality.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from service.settings import REPO_DIR

TARGETS = {
    "service_p50_us": 300,
    "service_p99_us": 1000,
    "client_p99_us": 3000,
    "sat_1w": 3000,
    "sat_2w": 5000,
}


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _client_row(name: str, row: dict[str, Any]) -> str:
    c = row["client"]
    s = row.get("service", {})
    return (
        f"| {name} | {c['achieved_rate']:,.0f} | {c['requests']:,} | {c['errors']} | "
        f"{c['p50_us']:,} | {c['p99_us']:,} | {c['p999_us']:,} | {c['max_us']:,} | "
        f"{s.get('p50_us', '-')} | {s.get('p99_us', '-')} | {s.get('p999_us', '-')} |"
    )


def _saturation_rows(name: str, sat: dict[str, Any]) -> list[str]:
    rows = []
    for step in sat["steps"]:
        c = step["client"]
        s = step.get("service", {})
        fallbacks = f"{step['fallbacks']:,.0f}" if "fallbacks" in step else "-"
        rows.append(
            f"| {name} | {step['rate']:,} | {c['achieved_rate']:,.0f} | {c['errors']} | "
            f"{fallbacks} | {c['p50_us']:,} | {c['p99_us']:,} | {s.get('p99_us', '-')} | "
            f"{'yes' if step['ok'] else 'no'} |"
        )
    return rows


EVENTS_SECTION = "events"
EVENTS_UNPINNED_SECTION = "events-unpinned"
EVENT_TARGETS = {"batch_events_per_s": 10_000, "single_per_s": 2_000, "ack_p99_us": 5_000}


def replace_section(page: str, name: str, body: str) -> str:
    """``page`` with the marked section ``name`` replaced (appended when missing)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    if begin in page and end in page:
        head, rest = page.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        return head + block + ("\n" + tail if tail else "")
    return page.rstrip("\n") + "\n\n" + block


def write_section(
    out: Path, name: str, heading: str, body: str, title: str = "# Model quality\n"
) -> None:
    """Put ``body`` in the marked section ``name`` of ``out`` (under ``heading`` when new)."""
    page = out.read_text() if out.exists() else title
    if f"<!-- {name}:begin -->" not in page:
        page = page.rstrip("\n") + f"\n\n{heading}\n"
    out.write_text(replace_section(page, name, body))


def save_result(kind: str, result: dict[str, Any]) -> Path:
    """Keep a benchmark's raw figures under .persona/bench (not in git)."""
    out_dir = REPO_DIR / ".persona" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return path


def section(page: str, name: str) -> str:
    """The marked section ``name`` of ``page`` with its markers, or ``""``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in page or end not in page:
        return ""
    return begin + page.split(begin, 1)[1].split(end, 1)[0] + end + "\n"


def _events_rows(name: str, sat: dict[str, Any], per_request: int) -> list[str]:
    rows = []
    for st in sat["steps"]:
        c, sv, ing = st["client"], st["service"], st["ingest"]
        rows.append(
            f"| {name} | {st['rate']:,} | {c['achieved_rate'] * per_request:,.0f} | "
            f"{c['errors']} | {c['p50_us']:,} | {c['p99_us']:,} | {c['p999_us']:,} | "
            f"{sv['p50_us']} | {sv['p99_us']} | {ing['p99_us']} | "
            f"{'yes' if st['ok'] else 'no'} |"
        )
    return rows


def render_events(r: dict[str, Any]) -> str:
    """The events section: ingestion rates and acknowledgement latency."""
    m = r["machine"]
    batch_eps = r["events_per_s_batches"]
    single = r["single"]["max_rate"]
    half = r["single_at_half"]
    half20 = r["batches_at_half"]
    ack_p99 = half["client"]["p99_us"]
    checks = [
        (
            "events/s on 1 worker in batches of 20",
            f"≥ {EVENT_TARGETS['batch_events_per_s']:,}",
            f"{batch_eps:,}",
            batch_eps >= EVENT_TARGETS["batch_events_per_s"],
        ),
        (
            "single-event requests/s on 1 worker",
            f"≥ {EVENT_TARGETS['single_per_s']:,}",
            f"{single:,}",
            single >= EVENT_TARGETS["single_per_s"],
        ),
        (
            f"p99 acknowledgement at half the single rate ({half['rate']:,}/s), client-side",
            f"≤ {EVENT_TARGETS['ack_p99_us']:,} µs",
            f"{ack_p99:,} µs",
            ack_p99 <= EVENT_TARGETS["ack_p99_us"],
        ),
    ]
    placement = (
        "service pinned to CPU 1, generator and Redis (AOF on, appendfsync everysec) to CPU 0"
        if r["pinned"]
        else "no CPU pinning"
    )
    heading = (
        "## Events ingestion (recognition issue)"
        if r["pinned"]
        else "### Events ingestion without CPU pinning"
    )
    lines = [
        heading,
        "",
        f"Measured {r['date']} on {m.get('cpu', '?')} ({m.get('cpus', '?')} CPUs) with "
        f"`{r['command']}`; {placement}. Each request "
        "carries `view` events of random visitors among 50,000 with "
        "`X-Persona-Consent: personalization`; every event updates the profile (Lua, one "
        "round trip per batch), is de-duplicated and appended to the log. Rates are stepped "
        "open-loop until a step misses its rate, errs, or its client p99 passes 20 ms.",
        "",
        "| target | wanted | measured | verdict |",
        "|---|---|---|---|",
        *[f"| {n} | {w} | {g} | {_verdict(ok)} |" for n, w, g, ok in checks],
        "",
        "| scenario | requests/s asked | events/s achieved | errors | client p50 µs | "
        "client p99 µs | client p99.9 µs | service p50 µs | service p99 µs | "
        "ingest p99 µs | kept |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *_events_rows("batches of 20", r["batches_of_20"], 20),
        *_events_rows("single events", r["single"], 1),
        *_events_rows(f"single at half ({half['rate']:,}/s)", {"steps": [{**half, "ok": True}]}, 1),
        *_events_rows(
            f"batches at half ({half20['rate']:,}/s)", {"steps": [{**half20, "ok": True}]}, 20
        ),
        "",
    ]
    if not r["pinned"]:
        return "\n".join([*lines, *UNPINNED_NOTES, ""])
    lines += [
        "Where the time goes (CPU seconds per second read from /proc while 300 batches of "
        "20 per second ran, pinned as above; 2026-12-01):",
        "",
        "- **Redis is the first wall.** `INFO commandstats` puts `EVALSHA` of `apply.lua` at "
        "~78 µs per person (the commands inside it ~22 µs: ZADD, XADD, GET, SET, EXPIRE, "
        "ZREMRANGEBYSCORE; the rest is cjson decoding the events and the profile and "
        "encoding the profile). With reading, parsing and AOF, Redis used 0.56 CPU for "
        "6,000 events/s — ~95 µs per event — on the core it shares with the generator, so "
        "it saturates near 8,000 events/s. AOF (everysec) is only ~10 % of it.",
        "- **The service is the second.** 0.49 CPU for the same 6,000 events/s (~80 µs per "
        "event), of which validation (~6.5 µs), the per-person command (~2 µs, hand-encoded) "
        "and counters are a fraction; aiohttp's request cycle and asyncio wake-ups are the "
        "rest (the floor app costs ~210 µs of CPU per request).",
        "- Single events: ~330 µs of service CPU per request at 1,500/s (py-spy, half of it "
        "uvloop's own socket work) against the floor's 210 µs (AMD EPYC VM).",
        "- 2026-12-01, Intel Xeon VM, after the load generator was fixed to use its 32 "
        "connections in turn: two pinned runs kept 4,000 single events/s and 400 batches/s "
        "(8,000 events/s; 500 batches/s were achieved but with client p99 31-34 ms). With "
        "Redis sharing its core with the generator, Redis is the wall for batches; the "
        "unpinned runs below, where the OS places the processes, kept 10,000-12,000.",
        "- Levers measured on 2026-12-01 (`INFO commandstats`, 20,000 one-event calls on "
        "1,000 simulated profiles, variants of the script): `apply.lua` costs 43-47 µs per "
        "call; dropping the fill of missing profile fields, the pruning of the seen-id set "
        "or even the log `XADD` each changed it by less than the run-to-run spread, and "
        "dropping the profile's `SET` saved ~5 µs. The cost is the script call itself and "
        "cjson decoding and encoding the profile; what is left is grouping a batch's "
        "persons by partition into one call (a batch from one page is one person already).",
        "",
    ]
    return "\n".join(lines)


UNPINNED_NOTES = [
    "The same benchmark with the operating system free to place the service, Redis and "
    "the generator (`--no-pin`), as a deployment runs them. Read from /proc on "
    "2026-12-01 at 500 batches of 20 per second (10,000 events/s): Redis 0.38 CPU, the "
    "service 0.37, the generator 0.10 — about 38 µs of Redis and 37 µs of service per "
    "event, less than half the pinned figures above, where Redis and the generator "
    "share a core. `EVALSHA` of `apply.lua` measured alone (484-byte profile, one view "
    "event): 38-50 µs, of which the script call itself 3 µs, decoding the events 3 µs, "
    "reading and decoding the profile 8 µs, encoding it 4.5 µs, the commands inside ~8 µs "
    "and the update logic the rest.",
    "",
    "2026-12-01, Intel Xeon VM, generator fixed (32 connections used in turn): two "
    "unpinned runs in a row met all three targets — 600 and 500 batches of 20 per second "
    "(12,000 and 10,000 events/s), 3,500 single events/s in both, p99 acknowledgement "
    "2.6 and 2.5 ms at 1,750/s. The run shown is the first. Earlier runs (AMD EPYC VM, "
    "the generator reusing its newest connection) kept 10,000 events/s in batches but "
    "only 1,500 single events/s.",
    "",
    "2026-12-01 afternoon, AMD EPYC VM: the same command kept 5,000 events/s in batches "
    "(twice) and 1,500-2,000 single events/s, p99 acknowledgement 3.5-5.7 ms at half "
    "rate; the morning's code on the pyenv interpreter, run the same way on that VM, kept"
    " 8,000 and 2,000/s, and alternated A/B runs at 400 batches/s and 2,000 single "
    "events/s showed no difference between the two (client p99 12.3/8.0 ms before, "
    "8.1/3.6 ms after for batches): the targets above were met on the Intel VM and are "
    "not reached on this one, whose Redis spends 35-48 µs of CPU per event.",
]


def render(r: dict[str, Any], previous: str = "") -> str:
    """The Markdown report; the events section of ``previous`` is kept."""
    m = r["machine"]
    p = r["persona_1000"]
    rp = r["redispy_1000"]
    fl = r["floor_1000"]
    sat1 = r["saturation_1w"]["max_rate"]
    sat2 = r["saturation_2w"]["max_rate"]
    svc = p["service"]
    checks = [
        (
            "service-side p50 at 1,000/s, 1 worker",
            f"≤ {TARGETS['service_p50_us']} µs",
            f"{svc['p50_us']} µs",
            svc["p50_us"] <= TARGETS["service_p50_us"],
        ),
        (
            "service-side p99 at 1,000/s",
            "≤ 1,000 µs",
            f"{svc['p99_us']} µs",
            svc["p99_us"] <= TARGETS["service_p99_us"],
        ),
        (
            "client-side p99 at 1,000/s",
            "≤ 3,000 µs",
            f"{p['client']['p99_us']:,} µs",
            p["client"]["p99_us"] <= TARGETS["client_p99_us"],
        ),
        ("errors at 1,000/s", "0", str(p["client"]["errors"]), p["client"]["errors"] == 0),
        ("saturation, 1 worker", "≥ 3,000/s", f"{sat1:,}/s", sat1 >= TARGETS["sat_1w"]),
        ("saturation, 2 workers", "≥ 5,000/s", f"{sat2:,}/s", sat2 >= TARGETS["sat_2w"]),
    ]
    lines = [
        "# Benchmarks",
        "",
        "Written by `loadtests/bench_decide.py`; do not edit by hand. Re-run with:",
        "",
        "```bash",
        f".venv/bin/{r['command'].replace('python', 'python', 1)}",
        "```",
        "",
        "## Machine",
        "",
        f"- {m['cpus']} vCPU, {m['cpu']}, Linux {m['kernel']}, Python {m['python']}, "
        f"Redis {m['redis']} (AOF on, everysec)",
        f"- {m['libraries']}",
        "- The load generator runs on the same 2-core machine as the service (and Redis), so it"
        " takes CPU from them; figures are conservative. The machine is shared and noisy: read"
        " ratios, not the last digit.",
        "",
        "## Method",
        "",
        f"- {r['profiles']:,} visitor profiles seeded into Redis from the simulator "
        f"(mean {r['seed']['mean_profile_bytes']:.0f} bytes each).",
        "- Requests: `POST /v1/decide` for `home-hero` (10 eligible variants, 50 features, "
        "250-tree model), 80 % known visitors (one profile read) and 20 % unknown ids (a read "
        "that finds nothing), with consent, random page contexts.",
        "- Fixed-rate open-loop generator (`loadtests/generator.py`): requests leave at their "
        "intended times whatever the server does, and latency runs from the intended send "
        "time, so queueing is counted (no coordinated omission).",
        "- Service-side quantiles come from the service's own "
        "`persona_http_request_duration_seconds` histogram (delta over the run, interpolated "
        "within buckets); the per-stage figures from `persona_decide_stage_duration_seconds`.",
        f"- Each latency run lasts {r['duration_s']:.0f} s after a warm-up; saturation steps "
        "the rate up and keeps the highest rate that was achieved with 0 errors, client "
        "p99 < 20 ms and at most 3 % of decisions answered with a fallback (defaults served "
        "because Redis answered late are cheap and are not throughput). The generator opens "
        "32 keep-alive connections first and uses them in turn, as many browsers would, so "
        "a multi-worker server's kernel spreads them over its workers.",
        "",
        "## Targets (foundation issue)",
        "",
        "| target | wanted | measured | |",
        "|---|---|---|---|",
        *[f"| {name} | {want} | {got} | {_verdict(ok)} |" for name, want, got, ok in checks],
        "",
        "## Latency at 1,000 requests/s (µs)",
        "",
        "| run | achieved/s | requests | errors | client p50 | client p99 | client p99.9 | "
        "client max | service p50 | service p99 | service p99.9 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        _client_row("Persona, 1 worker, pipelined hiredis client", p),
        _client_row("Persona, 1 worker, redis-py client", rp),
        _client_row("floor: trivial aiohttp handler", fl),
        "",
        "### Where the time goes (1 worker, 1,000/s; µs)",
        "",
        "| stage | p50 | p99 |",
        "|---|---|---|",
        *[f"| {stage} | {q['p50_us']} | {q['p99_us']} |" for stage, q in p["stages"].items()],
        "",
        "`identify` includes parsing and validating the body; `redis` is the one profile read "
        "(known visitors only); `features` builds the 10x50 matrix; `score` is the compiled "
        "model; `serialize` is orjson and the response object. What is not in a stage is "
        "aiohttp's own HTTP handling.",
        "",
        "## Saturation (stepped open-loop rates)",
        "",
        "| server | offered/s | achieved/s | errors | fallbacks | client p50 µs | "
        "client p99 µs | service p99 µs | kept |",
        "|---|---|---|---|---|---|---|---|---|",
        *_saturation_rows("Persona, 1 worker", r["saturation_1w"]),
        *_saturation_rows("Persona, 2 workers", r["saturation_2w"]),
        *_saturation_rows("floor", r["floor_saturation"]),
        "",
        "## Findings",
        "",
        "- Measured alone, the stages are far cheaper than under load: building the 10x50 "
        "feature matrix takes ~30 µs and the compiled 250-tree model ~14 µs for 10 rows "
        "(`timeit`, idle machine), against the p50s above. On this 2-vCPU VM the generator, "
        "Redis and the service compete for the same cores, and every stage stretches.",
        "- The `redis` stage's tail is not Redis: the server answers a GET in microseconds. "
        "It is the time until the event loop resumes the waiting request — queueing behind "
        "its neighbours' CPU work and VM wake-ups — which is why the pipelined client, with "
        "less CPU per call, also has the shorter tail.",
        "- Run to run, this shared VM moves the figures by tens of percent: the floor app "
        "itself measured client p99 1.9 ms on 2026-11-22 and 2.9 ms on 2026-12-01. To check "
        "that the events work (issue 3) did not slow decisions, the code before and after it "
        "was run alternately against one Redis (20,000 profiles, 1,000/s, 15 s each, twice): "
        "service p50 761/623 µs before, 642/1,035 µs after — no difference above the noise.",
        "- Logging each decision for training (issue 5) was A/B-tested the same way "
        "(PERSONA_LOG_DECISIONS true/false, 1,000/s, twice): CPU per request 836/820 µs off, "
        "897/823 µs on — within this VM's noise.",
        "- Two CPU cuts on 2026-12-01 (learning-loop session), A/B against the code before "
        "them on one Redis (100,000 profiles, 1,000/s, 20 s each, alternated twice): the "
        "compiled model's entry point is called directly (lleaves' `predict` checks and "
        "converts its input on every call: 13.7 → 7.5 µs for a 10-row slot, idle; `score` "
        "stage p50 62/65 → 53/50 µs under load), and decision-log entries are gathered for "
        "3 ms into one write instead of one task and one syscall per request. Service p50 "
        "532/530 µs before, 516/458 µs after; p99 1,480/1,905 before, 1,593/1,213 after — "
        "the p50 gain is real but small next to the run-to-run noise.",
        "- The same benchmark without CPU pinning (`--no-pin`, 2026-12-01, straight after "
        "the run above): service p50 551 µs, p99 2,122 µs, client p99 4,850 µs at 1,000/s; "
        "saturation 2,000/s for 1 worker and for 2 workers (the floor app: 9,000/s). Letting "
        "the OS place the processes buys throughput, not latency.",
        "- py-spy on the service at 1,000/s (20,000 profiles): about half of the process's "
        "samples are uvloop's own C code (socket reads and writes, callbacks), a quarter "
        "aiohttp's request cycle, and the decision path (identify, profile read, features, "
        "score, serialize, log) the rest. Each request costs at least four syscalls (read, "
        "response write, Redis GET write, Redis reply read); the `redis` stage is a round "
        "trip through another process on the same two cores.",
        "- The decision log costs Redis memory and AOF: about 1.4 KB per decision (its "
        "profile snapshot), 32 MB of AOF per 23,000 decisions, so AOF rewrites (a fork) come "
        "sooner; size `PERSONA_LOG_MAXLEN` and the disk for it.",
        "- Four full runs on 2026-12-01 (Intel Xeon VM), the last one shown above: service "
        "p50 at 1,000/s 387, 365, 363 and 365 µs; p99 863, 700, 699 and 714 µs; saturation "
        "with 1 worker 3,000, 3,500, 2,000 and 3,500/s; with 2 workers 3,000, 2,500, 4,000 "
        "and 2,500/s. The "
        "saturation verdicts turn on a step lasting 10 s in which one VM pause of 20-30 ms "
        "(client max) puts hundreds of reads past their 3 ms timeout; read the verdicts "
        "with that spread.",
        "- Where a request's CPU goes (2026-12-01, Intel Xeon VM, 1 worker pinned, 20,000 "
        "profiles, 1,000/s, CPU time of the service process from /proc divided by requests, "
        "parts of the path switched off one at a time in a scratch copy): 426 µs in all; 360 "
        "without the decision log; ~310 without scoring as well; ~275 without building "
        "features; 178 without the Redis read — against 90 µs for the floor app. The Redis "
        "read costs ~75 µs of the service's own CPU (syscalls and the extra wake-up of the "
        "loop), not only its wait. Per request the CPU falls with load (~300 µs at 2,500/s: "
        "one wake-up serves several sockets), which is why saturation is above "
        "1 / (CPU at 1,000/s).",
        "- Scoring is slow under load because the model is cold: the compiled 250-tree model "
        "is ~680 KB of machine code, and a 10-row slot takes 7 µs when it is in the CPU "
        "caches and 34 µs when it is not (measured by evicting the caches between calls). "
        "Re-scoring the previous request's rows while waiting for Redis (to bring the code "
        "back) was tried and reverted: the wait is idle time in which the vCPU halts and the "
        "caches go cold again, so the `score` stage only fell 45 → 35 µs while the warm-up "
        "cost its own ~40 µs. lleaves' code-model and cache-blocking options change the code "
        "size and the cold time by less than 10 %. Raising the garbage collector's "
        "generation-0 threshold changed nothing measurable.",
        "- Overlapping the visitor-free work (holdout, the context and variant columns of "
        "the matrix) with the Redis round trip was tried (2026-12-01, A/B alternated, 4 "
        "runs each at 1,000/s): `features` fell 50 → 37 µs but the `redis` stage grew, and "
        "service p50 went 364 → 352 µs on average — within the noise; not kept. Instrumented "
        "the same way, the round trip itself (GET written → reply parsed) is ~85 µs p50 "
        "and ~290 µs p90, and the task resumes ~4 µs after the reply; a Unix socket instead "
        "of loopback TCP changed nothing measurable.",
        "- Two benchmark faults found and fixed on 2026-12-01: the generator reused its most "
        "recently freed connection, which sent nearly every request down one connection and "
        "so to one of two worker processes (2 workers measured no better than 1); it now "
        "opens 32 connections and uses them in turn. And steps that stayed fast because "
        "Redis timed out and defaults were served counted as throughput; a step now needs "
        "≥ 97 % of its decisions personalized.",
        "- Why 2 workers do not reach 5,000/s here: at 2,500/s with 2 workers (unpinned, "
        "2026-12-01) the CPU per request was ~400 µs in the two workers together, 41 µs in "
        "Redis and 83 µs in the load generator — ~520 µs per request on a machine with "
        "2,000,000 µs of CPU per second. The cost per request falls as load rises (the last "
        "run kept 4,000/s), but 5,000/s leaves ~400 µs per request for everything on the "
        "box, so the service has to come near 275 µs. The same CPU is why 1 worker on its "
        "own core (2,000-3,500/s today) and 2 workers sharing both cores with Redis and the "
        "generator (2,500-4,000/s) overlap. With the generator on another "
        "machine the arithmetic changes; that is not measured here.",
        "- A pause of the VM (client max ~20 ms in a run) times out every Redis read in flight "
        "at the same instant. The breaker used to count those as 5 consecutive failures and "
        "serve defaults for a whole second (3,000 fallbacks in one 3,000/s step); it now "
        "opens only on failures spread over at least the read timeout, starts with a 100 ms "
        "cool-down and doubles it per failed probe (docs/architecture.md).",
        "- Client-side caching of profiles (RESP3 `CLIENT TRACKING`) was considered and not "
        "built: on a real page every view posts an event that rewrites the visitor's "
        "profile, which invalidates the cached copy just before the page asks for its "
        "decision — the read it would save is the one that has just been invalidated. (It "
        "would not show in this benchmark either: reads are uniform over 100,000 profiles.)",
        "- The interpreter (2026-12-01, AMD EPYC VM, A/B alternated, 1,000/s and 2,500/s, "
        "20,000 profiles): pyenv's default CPython 3.11.7 build (no profile-guided "
        "optimization, shared libpython) against Debian's python3.11 (PGO, statically "
        "linked): service p50 394/393 → 332/352 µs and CPU per request 478/519 → 419/457 µs "
        "at 1,000/s. `scripts/bootstrap` now makes the venv with the distribution's Python "
        "when it has one; the Docker image's `python:3.11-slim` is an optimized build too.",
        "- Three CPU cuts on the same day, A/B against the code before them (both on "
        "Debian's Python): per-request metrics tallied in plain numbers and flushed into "
        "prometheus-client every second (an `observe` is ~1.2 µs, ~2.2 µs with several "
        "workers, about ten per request; a tally ~0.25 µs); an unknown visitor's rows and "
        "scores kept per placement and context (they depend on nothing else); a known "
        "visitor's cross columns skipping categories and tags without history (15 → 10 µs "
        "idle). At 2,500/s with 1 worker: CPU per request 338/353 → 296/310 µs, service p50 "
        "631/682 → 480/494 µs. At 1,000/s the difference is inside the noise.",
        "- What stands between the service and a 300 µs p50 at 1,000/s on this VM is the "
        "VM's idle: its kernel runs with guest halt-polling off (`haltpoll.guest_halt_poll_ns=0` "
        "on the Firecracker kernel's command line), so a vCPU halts the moment it has nothing "
        "to do, and each request and each Redis reply wakes it with cold caches. Measured: "
        "with a low-priority busy loop on the service's core (nice 19: it keeps the vCPU "
        "from halting and gets no CPU when the service wants it), service p50 359 → 279 µs, "
        "`redis` stage 149 → 115 µs, `features` 55 → 44 µs in back-to-back runs. A handler "
        "that only reads the body, makes one pipelined Redis GET and answers JSON measures "
        "142 µs p50 (321 µs p99) on this VM at 1,000/s; the same work the decision adds on "
        "top (features, model, choice, log, metrics) takes ~45 µs with warm caches and "
        "~200 µs here.",
        "- Three full runs later on 2026-12-01 on an AMD EPYC VM (Zen 4, 1 MB L2 per core), "
        "after the cuts above and on Debian's Python, the last one shown above: service p50 "
        "at 1,000/s 353, 387 and 395 µs, p99 1,634, 1,208 and 1,056 µs (the first run had "
        "a 38 ms VM pause), client p99 3,576, 2,903 and 2,454 µs; saturation 2,500/s with "
        "1 worker in all three, with 2 workers 3,500, 3,500 and 1,500/s (the last lost its "
        "2,000/s step to a burst of 754 timed-out reads, 3.8 % of the step). The floor app "
        "on the same VM kept 9,000-11,000/s, and its own client p50 was 304-384 µs at "
        "1,000/s against 166 µs on the Intel VM the same morning: this VM is slower for "
        "everything, which is why figures that met their targets there (p99, 1-worker "
        "saturation) do not here.",
        "- Tried on 2026-12-01 and not kept: polling the event loop instead of sleeping while "
        "requests are in flight (like Seastar's idle poll; service p50 329/402 µs against "
        "378/365 µs without — inside the noise) or for 0.2-2 ms after each request (293-351 "
        "µs, at up to twice the CPU per request); scoring the requests that become ready in "
        "the same loop iteration in one model call (2-3 requests per call at 2,800/s, but "
        "CPU per request 338/320 against 302/306 µs: the extra await costs more than the "
        "warmer model saves); a generation-0 GC threshold of 50,000 at 2,800/s (no change); "
        "compiling the 19 modules of the decision path to C with mypyc (6 min 40 s of "
        "compilation; the aiohttp middleware cannot be compiled) — CPU per request 542/511 "
        "against 462/506 µs at 1,000/s and 352/362 against 352/385 µs at 2,800/s, no gain: "
        "the path's time goes to dicts, numpy, aiohttp and the kernel, not to interpreting "
        "its own bytecode; pinning each of 2 workers to its own core (3,500/s and 4,000/s "
        "steps, alternated twice: kept and lost in turn either way, inside the noise).",
        "",
        "## Redis client paths tried",
        "",
        "| hot-path client | service p50 µs | service p99 µs | redis stage p50 µs | "
        "redis stage p99 µs |",
        "|---|---|---|---|---|",
        f"| pipelined RESP + hiredis (`PERSONA_REDIS_CLIENT=fast`, default) | "
        f"{svc['p50_us']} | {svc['p99_us']} | {p['stages']['redis']['p50_us']} | "
        f"{p['stages']['redis']['p99_us']} |",
        f"| redis-py 8 + hiredis (`PERSONA_REDIS_CLIENT=redispy`) | {rp['service']['p50_us']} | "
        f"{rp['service']['p99_us']} | {rp['stages']['redis']['p50_us']} | "
        f"{rp['stages']['redis']['p99_us']} |",
        "",
        "- **redis-py** (the stack's client, with hiredis): about 65 µs of client work per "
        "command on top of the round trip (performance brief), and `asyncio.wait_for` per "
        "call for the deadline.",
        "- **Pipelined RESP connection** (`service/store/resp.py`, chosen): one connection per "
        "process, commands written straight to the socket, replies parsed by hiredis and "
        "handed to waiters in FIFO order, a timer handle instead of `wait_for`. Concurrent "
        "requests share the connection, so under load their reads are pipelined.",
        "- **Not built**: server-assisted client-side caching (RESP3 `CLIENT TRACKING`) — see "
        "the findings: the page's own view event invalidates the profile right before the "
        "decision that would read it.",
        "",
    ]
    page = "\n".join(lines)
    kept = "\n".join(
        filter(None, (section(previous, n) for n in (EVENTS_SECTION, EVENTS_UNPINNED_SECTION)))
    )
    return page.rstrip("\n") + "\n\n" + kept if kept else page

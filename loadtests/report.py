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
    return "\n".join(lines)


DECIDE_SECTION = "decide"


def render(r: dict[str, Any]) -> str:
    """The decide benchmark's section of docs/benchmarks.md: machine, method, figures."""
    m = r["machine"]
    p = r["persona_1000"]
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
        "## The decision path",
        "",
        f"Measured with `.venv/bin/{r['command']}`"
        + (f" on {r['date']}" if "date" in r else "")
        + ".",
        "",
        "### Machine",
        "",
        f"- {m['cpus']} vCPU, {m['cpu']}, Linux {m['kernel']}, Python {m['python']}, "
        f"Redis {m['redis']} (AOF on, everysec)",
        f"- {m['libraries']}",
        "- The load generator runs on the same 2-core machine as the service (and Redis), so it"
        " takes CPU from them; figures are conservative. The machine is shared and noisy: read"
        " ratios, not the last digit.",
        "",
        "### Method",
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
        "### Targets",
        "",
        "| target | wanted | measured | |",
        "|---|---|---|---|",
        *[f"| {name} | {want} | {got} | {_verdict(ok)} |" for name, want, got, ok in checks],
        "",
        "### Latency at 1,000 requests/s (µs)",
        "",
        "| run | achieved/s | requests | errors | client p50 | client p99 | client p99.9 | "
        "client max | service p50 | service p99 | service p99.9 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        _client_row("Persona, 1 worker, pipelined hiredis client", p),
        _client_row("floor: trivial aiohttp handler", fl),
        "",
        "#### Where the time goes (1 worker, 1,000/s; µs)",
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
        "### Saturation (stepped open-loop rates)",
        "",
        "| server | offered/s | achieved/s | errors | fallbacks | client p50 µs | "
        "client p99 µs | service p99 µs | kept |",
        "|---|---|---|---|---|---|---|---|---|",
        *_saturation_rows("Persona, 1 worker", r["saturation_1w"]),
        *_saturation_rows("Persona, 2 workers", r["saturation_2w"]),
        *_saturation_rows("floor", r["floor_saturation"]),
        "",
    ]
    return "\n".join(lines)

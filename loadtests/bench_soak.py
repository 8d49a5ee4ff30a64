"""The soak benchmark: with the archiver on, Redis memory stays flat once the log's window fills.

    .venv/bin/python -m loadtests.bench_soak [--minutes 30] [--decisions 500] [--events 1000]

One service worker with the in-service archiver (``PERSONA_ARCHIVE_URL`` a
local folder) and a short window (``--window-s``, 180 s) over its own Redis
(AOF on), seeded with ``--profiles`` visitor profiles. Two open-loop
generators run together: decisions for the seeded visitors, and view events of
the same visitors in batches of 20. Every ``--sample-s`` seconds Redis'
``used_memory``, the log's memory and length and the archive's files are
sampled. At the end the bytes per log entry are measured by copying a sample
of the logged entries into scratch streams (``MEMORY USAGE``), in the format
logged now and in the one logged before the entries were shrunk (null fields
written out, the decision id twice), and with Redis' default stream node size
(4 KB) and the private Redis' (32 KB). The results replace the soak section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson
import pyarrow.parquet as pq
import redis

from loadtests.bench_decide import API_KEY, decide_factory, machine, scrape, start_persona
from loadtests.generator import Result, http_request, run
from loadtests.ids import seeded_visitor_id
from loadtests.report import replace_section, save_result
from loadtests.seed_profiles import SeedSpec, seed
from service.events.schemas import Event
from service.local_redis import STREAM_NODE_MAX_BYTES, LocalRedis
from service.settings import REPO_DIR
from service.store.keyspace import PARTITIONS, log_key

SECTION = "soak"
HEADERS = {"X-Persona-Consent": "personalization", "Authorization": f"Bearer {API_KEY}"}
CATEGORIES = ["running", "hiking", "cycling", "yoga", "fitness", "camping"]
REDIS_DEFAULT_NODE_BYTES = 4096
MB = 2**20


def views_factory(known: int, per_request: int) -> Any:
    """Requests carrying ``per_request`` view events of seeded visitors."""
    counter = itertools.count()

    def make(rng: random.Random) -> bytes:
        events = [
            {
                "type": "view",
                "event_id": f"soak-{next(counter):012d}",
                "visitor_id": seeded_visitor_id(rng.randrange(known)),
                "category": rng.choice(CATEGORIES),
                "page_type": "category",
            }
            for _ in range(per_request)
        ]
        return http_request("POST", "/v1/events", orjson.dumps({"events": events}), HEADERS)

    return make


def archive_files(root: Path) -> tuple[int, int]:
    """Parquet files under the archive and their bytes."""
    files = size = 0
    for path in root.glob("date=*/*.parquet"):
        files += 1
        size += path.stat().st_size
    return files, size


class Sampler(threading.Thread):
    """Samples Redis and the archive every ``every_s`` seconds until stopped."""

    def __init__(self, url: str, archive: Path, every_s: float) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.archive = archive
        self.every_s = every_s
        self.samples: list[dict[str, float]] = []
        self.logged: dict[str, list[tuple[bytes, dict[str, Any]]]] = {"decision": [], "event": []}
        self.start_time = time.monotonic()
        self.done = threading.Event()

    def sample(self) -> dict[str, float]:
        """One sample: seconds since the start, Redis and log memory, log length, archive."""
        pipe = self.client.pipeline(transaction=False)
        for p in range(PARTITIONS):
            pipe.memory_usage(log_key(p))
            pipe.xlen(log_key(p))
        replies = pipe.execute()
        files, size = archive_files(self.archive)
        partition = len(self.samples) % PARTITIONS
        _collect(self.logged, self.client.xrevrange(log_key(partition), count=100), 2000)
        return {
            "t": round(time.monotonic() - self.start_time, 1),
            "used_memory": float(self.client.info("memory")["used_memory"]),
            "log_memory": float(sum(r or 0 for r in replies[0::2])),
            "log_entries": float(sum(replies[1::2])),
            "archive_files": float(files),
            "archive_bytes": float(size),
        }

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append(self.sample())
            self.done.wait(self.every_s)

    def stop(self) -> list[dict[str, float]]:
        """Stop sampling (after one last sample); return the samples."""
        self.done.set()
        self.join()
        self.samples.append(self.sample())
        self.client.close()
        return self.samples


def load(port: int, known: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The open-loop load, a minute at a time; each minute's client figures."""
    decide, views = decide_factory(known, unknown_share=0.0), views_factory(known, 20)

    async def minute(seconds: float, n: int) -> Any:
        return await asyncio.gather(
            run("127.0.0.1", port, decide, args.decisions, seconds, seed=2 * n),
            run("127.0.0.1", port, views, args.events / 20, seconds, seed=2 * n + 1),
        )

    minutes: list[dict[str, Any]] = []
    left = args.minutes * 60.0
    while left > 0:
        seconds = min(60.0, left)
        decided, sent = asyncio.run(minute(seconds, len(minutes)))
        minutes.append({"decide": _summary(decided), "events": _summary(sent)})
        left -= seconds
    return minutes


def _summary(result: Result) -> dict[str, Any]:
    return {**result.summary(), "statuses": {str(k): v for k, v in result.statuses.items()}}


def verbose_decision(e: dict[str, Any]) -> dict[str, Any]:
    """A decision entry as it was logged before entries were shrunk (nulls written out, the
    decision id also as event_id)."""
    context = e.get("context", {})
    return {
        "type": "decision",
        "event_id": e["decision_id"],
        "decision_id": e["decision_id"],
        "timestamp": e["timestamp"],
        "placement": e["placement"],
        "variant_id": e.get("variant_id"),
        "policy": e["policy"],
        "fallback": e.get("fallback"),
        "propensity": e["propensity"],
        "model_version": e.get("model_version"),
        "catalog_version": e["catalog_version"],
        "explore_share": e["explore_share"],
        "candidates": e["candidates"],
        "scores": e["scores"],
        "excluded": e.get("excluded", []),
        "context": {
            k: context.get(k)
            for k in ("device", "page_type", "category", "referrer", "hour", "dow")
        },
        "profile": e.get("profile"),
        "shadow": e.get("shadow"),
    }


def verbose_event(e: dict[str, Any]) -> dict[str, Any]:
    """An event entry as it was logged before (every field of its type, nulls included)."""
    out: dict[str, Any] = msgspec.to_builtins(msgspec.convert(e, Event))
    out["timestamp"] = e["timestamp"]
    out.pop("visitor_id", None)
    return out


def _collect(found: dict[str, list[tuple[bytes, dict[str, Any]]]], logged: Any, n: int) -> None:
    """Keep up to ``n`` decision and ``n`` event entries of ``logged`` (XRANGE replies).
    Decisions are those of the model or of exploration (a fallback logs no profile)."""
    for _, fields in logged:
        e = orjson.loads(fields[b"e"])
        kind = "decision" if e.get("type") == "decision" else "event"
        if kind == "decision" and e.get("policy") not in ("model", "explore"):
            continue
        if len(found[kind]) < n:
            found[kind].append((fields[b"v"], e))


def bytes_per_entry(
    client: redis.Redis, entries: list[tuple[bytes, dict[str, Any]]], node_bytes: int
) -> float:
    """Redis memory per entry of a stream holding ``entries`` (nodes of ``node_bytes``)."""
    config: Any = client.config_get("stream-node-max-bytes")
    saved = config["stream-node-max-bytes"]
    client.config_set("stream-node-max-bytes", node_bytes)
    try:
        client.delete("soak:scratch")
        for visitor, e in entries:
            client.xadd("soak:scratch", {"v": visitor, "e": orjson.dumps(e)})
        used = client.memory_usage("soak:scratch", samples=0) or 0
        client.delete("soak:scratch")
        return round(used / len(entries), 1)
    finally:
        client.config_set("stream-node-max-bytes", saved)


def entry_sizes(url: str, found: dict[str, list[tuple[bytes, dict[str, Any]]]]) -> dict[str, Any]:
    """Bytes per decision and per event entry (``found``, collected while the load ran):
    before and after the shrinking, at Redis' default stream node size and the private
    Redis'."""
    client = redis.Redis.from_url(url)
    try:
        out: dict[str, Any] = {}
        for kind, entries in found.items():
            if not entries:
                continue
            verbose = verbose_decision if kind == "decision" else verbose_event
            before = [(v, verbose(e)) for v, e in entries]
            out[kind] = {
                "sampled": len(entries),
                "json_before": round(float(np.mean([len(orjson.dumps(e)) for _, e in before])), 1),
                "json_after": round(float(np.mean([len(orjson.dumps(e)) for _, e in entries])), 1),
                "before": bytes_per_entry(client, before, REDIS_DEFAULT_NODE_BYTES),
                "after_default_nodes": bytes_per_entry(client, entries, REDIS_DEFAULT_NODE_BYTES),
                "after": bytes_per_entry(client, entries, STREAM_NODE_MAX_BYTES),
            }
        out["profile"] = _per_key(client, "persona:*:profile:*")
        out["seen_id"] = _per_key(client, "persona:*:seen:*", members=True)
        return out
    finally:
        client.close()


def _per_key(client: redis.Redis, pattern: str, members: bool = False) -> float:
    """Mean memory per key matching ``pattern`` (per member of the zsets, with ``members``)."""
    used = count = 0
    for key in itertools.islice(client.scan_iter(match=pattern, count=1000), 2000):
        used += client.memory_usage(key, samples=0) or 0
        count += int(client.zcard(key)) if members else 1
    return round(used / count, 1) if count else 0.0


def archive_totals(root: Path) -> dict[str, float]:
    """Rows, distinct entries (partition and stream id), files and bytes of the archive."""
    rows = 0
    keys = []
    for path in root.glob("date=*/*.parquet"):
        t = pq.read_table(path, columns=["partition", "ms", "seq"])
        rows += t.num_rows
        ms = t.column("ms").to_numpy()
        keys.append(
            (ms << 18) | (t.column("seq").to_numpy() << 6) | t.column("partition").to_numpy()
        )
    files, size = archive_files(root)
    distinct = int(np.unique(np.concatenate(keys)).size) if keys else 0
    return {"rows": rows, "distinct": distinct, "files": files, "bytes": size}


def curve(samples: list[dict[str, float]], filled_at: float) -> dict[str, Any]:
    """The memory curve before and after the window filled: levels and slopes (bytes/min)."""

    def slope(points: list[dict[str, float]], key: str) -> float:
        if len(points) < 2:
            return 0.0
        t = np.array([s["t"] for s in points]) / 60
        return round(float(np.polyfit(t, np.array([s[key] for s in points]), 1)[0]))

    before = [s for s in samples if s["t"] < filled_at]
    after = [s for s in samples if s["t"] >= filled_at]
    out: dict[str, Any] = {"filled_at_s": filled_at}
    for key in ("used_memory", "log_memory", "log_entries"):
        values = [s[key] for s in after]
        out[key] = {
            "at_start": samples[0][key],
            "at_fill": after[0][key] if after else None,
            "after_min": min(values) if values else None,
            "after_max": max(values) if values else None,
            "at_end": samples[-1][key],
            "slope_before_per_min": slope(before, key),
            "slope_after_per_min": slope(after, key),
        }
    return out


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Seed, serve, load and sample; return every figure."""
    with tempfile.TemporaryDirectory(prefix="persona-soak-") as tmp:
        root = Path(tmp)
        server_redis = LocalRedis(root / "redis", appendonly=True)
        url = server_redis.start()
        try:
            seeded = seed(url, SeedSpec(args.profiles, anchor=time.time()), jobs=2)
            archive = root / "archive"
            env = {
                "PERSONA_LOG_WINDOW_S": str(args.window_s),
                "PERSONA_DEDUPE_WINDOW_S": str(args.window_s),
                "PERSONA_DECIDE_DEADLINE_MS": str(args.decide_deadline_ms),
                "PERSONA_REDIS_TIMEOUT_MS": str(args.decide_deadline_ms),
            }
            if not args.no_archive:
                env["PERSONA_ARCHIVE_URL"] = str(archive)
            server = start_persona(url, 1, root / "data", extra_env=env)
            sampler = Sampler(url, archive, args.sample_s)
            try:
                sampler.start()
                minutes = load(server.port, args.profiles, args)
                time.sleep(args.sample_s)
                samples = sampler.stop()
                metrics = scrape(server.port)
            finally:
                server.stop()
            return {
                "profiles": seeded,
                "minutes": minutes,
                "samples": samples,
                "curve": curve(samples, args.window_s + 60.0),
                "metrics": {k: v for k, v in metrics.items() if _kept(k)},
                "archive": archive_totals(archive),
                "entry_bytes": entry_sizes(url, sampler.logged),
                "maxmemory": float(redis.Redis.from_url(url).info("memory")["maxmemory"]),
            }
        finally:
            server_redis.stop()


def _kept(series: str) -> bool:
    return series.startswith(
        (
            "persona_archive_",
            "persona_event_log_trimmed",
            "persona_decisions_logged_total",
            "persona_events_total",
            "persona_fallbacks_total",
            "persona_overload_shed_total",
        )
    )


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / MB:,.1f}"


def render(r: dict[str, Any]) -> str:
    """The soak section of docs/benchmarks.md."""
    m, c, a, sizes = r["machine"], r["curve"], r["archive"], r["entry_bytes"]
    used, logm, entries = c["used_memory"], c["log_memory"], c["log_entries"]
    decide = [x["decide"] for x in r["minutes"]]
    sent = [x["events"] for x in r["minutes"]]
    metrics = r["metrics"]
    logged = metrics.get('persona_decisions_logged_total{outcome="ok"}', 0.0) + sum(
        v for k, v in metrics.items() if k.startswith("persona_events_total") and "accepted" in k
    )
    fallbacks = sum(v for k, v in metrics.items() if k.startswith("persona_fallbacks_total")) / max(
        sum(d["requests"] for d in decide), 1
    )
    by_window = metrics.get('persona_event_log_trimmed_entries_total{reason="window"}', 0.0)
    by_limit = metrics.get('persona_event_log_trimmed_entries_total{reason="memory_limit"}', 0.0)
    rows = [s for i, s in enumerate(r["samples"]) if i % max(1, round(120 / r["sample_s"])) == 0]
    lines = [
        "## Redis memory under a steady load (soak)",
        "",
        f"Measured {r['date']} with `.venv/bin/{r['command']}` on {m['cpus']} vCPU "
        f"({m['cpu']}), Redis {m['redis']} (AOF on, everysec, maxmemory "
        f"{_mb(r['maxmemory'])} MB, stream nodes of {STREAM_NODE_MAX_BYTES // 1024} KB), one "
        "service worker with the in-service archiver writing to a local folder; the load "
        "generator, the service and Redis share the machine, which other work shares too. "
        f"{r['profiles']['count']:,} seeded profiles; {r['decisions']:,} decisions/s for them "
        f"and {r['events']:,} view events/s of the same visitors (batches of 20) for "
        f"{r['minutes_run']:g} minutes, open loop; `PERSONA_LOG_WINDOW_S={r['window_s']}` and "
        f"`PERSONA_DEDUPE_WINDOW_S={r['window_s']}` (the remembered event ids are the other "
        "state that grows with traffic, see the sizing rule in operations), "
        f"`PERSONA_DECIDE_DEADLINE_MS` and `PERSONA_REDIS_TIMEOUT_MS` {r['decide_deadline_ms']:g} "
        "(so that decisions are made, and logged with their profiles, on a machine this loaded: "
        "at the defaults, 5 and 3 ms, AOF rewrites and the shared CPUs turned most of them into "
        "fallbacks, which log smaller entries). Redis is "
        f"sampled every {r['sample_s']:g} s; the window counts as filled "
        f"{c['filled_at_s']:.0f} s in (window + one minute).",
        "",
        "| | at the start | when the window filled | after: min | after: max | at the end "
        "| slope before | slope after |",
        "|---|---|---|---|---|---|---|---|",
        f"| Redis used_memory (MB) | {_mb(used['at_start'])} | {_mb(used['at_fill'])} | "
        f"{_mb(used['after_min'])} | {_mb(used['after_max'])} | {_mb(used['at_end'])} | "
        f"{used['slope_before_per_min'] / MB:+,.2f} MB/min | "
        f"{used['slope_after_per_min'] / MB:+,.2f} MB/min |",
        f"| the log's memory (MB) | {_mb(logm['at_start'])} | {_mb(logm['at_fill'])} | "
        f"{_mb(logm['after_min'])} | {_mb(logm['after_max'])} | {_mb(logm['at_end'])} | "
        f"{logm['slope_before_per_min'] / MB:+,.2f} MB/min | "
        f"{logm['slope_after_per_min'] / MB:+,.2f} MB/min |",
        f"| entries in the log | {_n(entries['at_start'])} | {_n(entries['at_fill'])} | "
        f"{_n(entries['after_min'])} | {_n(entries['after_max'])} | {_n(entries['at_end'])} "
        f"| {entries['slope_before_per_min']:+,.0f}/min | "
        f"{entries['slope_after_per_min']:+,.0f}/min |",
        "",
        "| minute | Redis used_memory MB | log MB | log entries | archive files | archive MB |",
        "|---|---|---|---|---|---|",
        *[
            f"| {s['t'] / 60:.1f} | {_mb(s['used_memory'])} | {_mb(s['log_memory'])} | "
            f"{s['log_entries']:,.0f} | {s['archive_files']:,.0f} | {_mb(s['archive_bytes'])} |"
            for s in rows
        ],
        "",
        f"- Load: decisions {min(d['achieved_rate'] for d in decide):,.0f}-"
        f"{max(d['achieved_rate'] for d in decide):,.0f}/s a minute, "
        f"{sum(d['errors'] for d in decide)} errors, worst minute's p99 "
        f"{max(d['p99_us'] for d in decide) / 1000:,.1f} ms, {fallbacks:.1%} answered with "
        f"a fallback; event batches {sum(s['errors'] for s in sent):,} errors (503: shed or "
        f"Redis late), worst p99 {max(s['p99_us'] for s in sent) / 1000:,.1f} ms. Latency is "
        "not what this measures: the 2-core machine runs the generator, the service, Redis and "
        "other work at once.",
        f"- Archive: {a['files']:,} files, {_mb(a['bytes'])} MB, {a['rows']:,} rows for "
        f"{a['distinct']:,} distinct entries ({a['bytes'] / max(a['distinct'], 1):,.0f} bytes "
        f"an entry on disk); the service logged {logged:,.0f} entries (decisions and accepted "
        f"events) and trimmed {by_window:,.0f} by the window, {by_limit:,.0f} by the memory "
        "limit.",
        "",
        "Bytes of Redis memory per log entry (`MEMORY USAGE` of a stream holding "
        f"{sizes.get('decision', {}).get('sampled', 0):,} logged decisions of the model or of "
        "exploration, with their profile snapshots, or "
        f"{sizes.get('event', {}).get('sampled', 0):,} events, divided by their number; "
        "'before' rebuilds the entries as they were logged before with every null field "
        "written out and the decision id twice):",
        "",
        "| entry | JSON before | JSON now | Redis before (4 KB nodes) | Redis now, 4 KB nodes | "
        f"Redis now, {STREAM_NODE_MAX_BYTES // 1024} KB nodes | change |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {kind} | {s['json_before']:,.0f} | {s['json_after']:,.0f} | "
            f"{s['before']:,.0f} | {s['after_default_nodes']:,.0f} | {s['after']:,.0f} | "
            f"{(s['after'] / s['before'] - 1) * 100:+.0f} % |"
            for kind, s in sizes.items()
            if isinstance(s, dict)
        ],
        "",
        f"A stored profile takes {sizes['profile']:,.0f} bytes and a remembered event id "
        f"(`seen:<id>`, kept `PERSONA_DEDUPE_WINDOW_S`) {sizes['seen_id']:,.0f} bytes.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    """Run the soak, print its summary and write its section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--decisions", type=float, default=500.0, help="decisions per second")
    parser.add_argument("--events", type=float, default=1000.0, help="events per second")
    parser.add_argument("--window-s", type=int, default=180, help="PERSONA_LOG_WINDOW_S")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument(
        "--no-archive", action="store_true", help="without PERSONA_ARCHIVE_URL (for comparison)"
    )
    parser.add_argument(
        "--decide-deadline-ms",
        type=float,
        default=50.0,
        help="PERSONA_DECIDE_DEADLINE_MS and PERSONA_REDIS_TIMEOUT_MS (50: decisions are made, "
        "and logged with their profiles, on a loaded machine; this measures memory, not latency)",
    )
    parser.add_argument("--out", default=str(REPO_DIR / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    command = (
        f"python -m loadtests.bench_soak --minutes {args.minutes:g} --decisions "
        f"{args.decisions:g} --events {args.events:g} --window-s {args.window_s} "
        f"--decide-deadline-ms {args.decide_deadline_ms:g}"
    )
    result = {
        "machine": machine(),
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "decisions": args.decisions,
        "events": args.events,
        "window_s": args.window_s,
        "sample_s": args.sample_s,
        "minutes_run": args.minutes,
        "decide_deadline_ms": args.decide_deadline_ms,
        **soak(args),
    }
    path = save_result("soak", result)
    out = Path(args.out)
    page = out.read_text() if out.exists() else ""
    out.write_text(replace_section(page, SECTION, render(result)))
    print(orjson.dumps({"curve": result["curve"], "archive": result["archive"]}).decode())
    print(f"figures in {path}, section '{SECTION}' of {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())

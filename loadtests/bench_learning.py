"""The learning loop at full size: one turn on the simulator, written to docs/model-quality.md.

Starts a private Redis and ``python -m service`` with the bundled model, then
runs :func:`models.loop.run_loop`: a warm-up and a measured run of simulated
visitors with the bundled model (20 % exploration), ``persona train`` on that
log, ``persona evaluate`` on the decisions the candidate did not train on,
registration and activation through the admin API with the bundled model in
shadow, and a second measured run. Every click rate is the mean true click
probability of what a policy chose, on the same requests of the second run.

    python -m loadtests.bench_learning            # about 4 minutes
    python -m loadtests.bench_learning --quick    # about 1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtests.bench_decide import machine, start_persona
from loadtests.report import save_result, write_section
from models.loop import LoopConfig, run_loop
from service.admin.tokens import TokenStore
from service.local_redis import LocalRedis
from service.settings import REPO_DIR
from service.store.address import redis_client_for

SECTION = "loop"
SITE_SECRET = "bench-site-secret-" + "s" * 32
API_KEY = "bench-api-key-" + "k" * 32
TARGETS = {"lift_over_random": 1.5, "share_of_oracle": 0.8}


async def _token(redis_url: str) -> str:
    client = redis_client_for(redis_url, timeout_s=10)
    try:
        return await TokenStore(client).create(
            "bench", ["config:read", "config:write", "publish", "models"]
        )
    finally:
        await client.aclose()


def run(config: LoopConfig, workdir: Path) -> dict[str, Any]:
    """One turn of the loop on a fresh service; the loop's report plus the machine."""
    redis = LocalRedis(workdir / "redis", appendonly=False)
    redis.start()
    env = {"PERSONA_SITE_SECRETS": SITE_SECRET, "PERSONA_API_KEYS": API_KEY}
    server = start_persona(redis.url, 1, workdir / "data", extra_env=env)
    try:
        token = asyncio.run(_token(redis.url))
        report = asyncio.run(
            run_loop(
                f"http://127.0.0.1:{server.port}",
                redis.url,
                token,
                config,
                workdir,
                api_key=API_KEY,
                site_secret=SITE_SECRET,
                env=env,
                progress=True,
            )
        )
    finally:
        server.stop()
        redis.stop()
    return {
        **report.to_json(),
        "config": {
            "visitors": config.visitors,
            "decisions": config.decisions,
            "warmup": config.warmup if config.warmup is not None else config.decisions,
            "rate": config.rate,
            "seed": config.seed,
            "explore_share": config.explore_share,
            "concurrency": config.concurrency,
        },
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def render(r: dict[str, Any], command: str) -> str:
    """The docs/model-quality.md section for one turn."""
    c, cf, ovo, ev = (
        r["config"],
        r["new_vs_old_on_same_requests"],
        r["online_vs_offline"],
        r["evaluation"],
    )
    before, after = r["before"], r["after"]
    m = r["machine"]
    lift = cf["ctr_new"] / cf["ctr_random"]
    share = cf["ctr_new"] / cf["ctr_oracle"]
    ips, snips = ovo["offline_ips"], ovo["offline_snips"]
    lines = [
        f"Measured {r['date']} with `{command}` on {m['cpus']} x {m['cpu']}, "
        f"Python {m['python']}, Redis {m['redis']}.",
        "",
        f"One turn: {c['visitors']:,} simulated people, {c['warmup']:,} warm-up decisions and "
        f"{c['decisions']:,} measured decisions before, {c['decisions']:,} after, "
        f"{c['rate']:,.0f} decisions/s, exploration {c['explore_share']:.0%} on every slot, "
        f"seed {c['seed']}. Bundled model `{r['baseline_version']}` → trained "
        f"`{r['model_version']}`.",
        "",
        "### Click rate of each policy on the same requests (the second run)",
        "",
        "The trained model served; the bundled one ran in shadow, so its choice on each request "
        "is known; popularity picks the variant with the best click rate of the first run. "
        f"{cf['decisions']:,} model-chosen decisions; rates are mean true click probabilities.",
        "",
        "| policy | CTR | x random | share of oracle |",
        "|---|---:|---:|---:|",
    ]
    for name, key in (
        ("trained model (live)", "ctr_new"),
        ("bundled model (shadow)", "ctr_old"),
        ("popularity", "ctr_popularity"),
        ("random", "ctr_random"),
        ("oracle", "ctr_oracle"),
    ):
        v = cf[key]
        lines.append(
            f"| {name} | {_pct(v)} | {v / cf['ctr_random']:.2f} | {v / cf['ctr_oracle']:.1%} |"
        )
    lo, hi = cf["difference_ci"]
    lines += [
        "",
        f"Trained minus bundled: {_pct(cf['difference'])} "
        f"(95 % interval {_pct(lo)} to {_pct(hi)}); "
        f"they chose the same variant on {cf['same_choice_share']:.0%} of requests.",
        "",
        "Targets: trained model ≥ 1.5 x random "
        f"({lift:.2f}: {'met' if lift >= TARGETS['lift_over_random'] else 'NOT met'}), "
        f"≥ 80 % of the oracle ({share:.1%}: "
        f"{'met' if share >= TARGETS['share_of_oracle'] else 'NOT met'}).",
        "",
        "### Before and after (each run on its own requests)",
        "",
        "| run | model CTR | share of oracle | live CTR (all policies) | holdout CTR "
        "| mean rating | conversions |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in (("before (bundled)", before), ("after (trained)", after)):
        mp, hp = s["by_policy"].get("model", {}), s["by_policy"].get("holdout", {})
        lines.append(
            f"| {name} | {_pct(mp.get('ctr', 0.0))} | {mp.get('share_of_oracle', 0.0):.1%} | "
            f"{_pct(s['ctr_live'])} | {_pct(hp.get('ctr', 0.0))} | {s['mean_rating']} | "
            f"{s['conversions']:,} |"
        )
    lines += [
        "",
        f"Visits: {after['sessions']:,} sessions in the second run, "
        f"{after['returning_sessions'] / max(1, after['sessions']):.0%} by returning people, "
        f"{after['logins']:,} logins, {after['second_device_sessions']:,} on a second device, "
        f"{after['drifts']:,} taste drifts; errors {before['errors'] + after['errors']}.",
        "",
        "### Offline estimate vs online measurement",
        "",
        f"`persona evaluate` on the {ev['decisions']:,} logged decisions the candidate did not "
        f"train on (its validation window); candidate AUC {ev['candidate_auc']:.4f}, "
        f"log loss {ev['candidate_logloss']:.4f}.",
        "",
        "| policy | IPS [95 % CI] | SNIPS [95 % CI] |",
        "|---|---|---|",
    ]
    for name, est in ev["estimates"].items():
        i, s = est["ips"], est["snips"]
        lines.append(
            f"| {name} | {_pct(i['value'])} [{_pct(i['low'])}, {_pct(i['high'])}] | "
            f"{_pct(s['value'])} [{_pct(s['low'])}, {_pct(s['high'])}] |"
        )
    olo, ohi = ovo["online_ci"]
    inside = ovo["online_within_ips_ci"]
    lines += [
        "",
        f"Online, the trained model's decisions earned {ovo['online_clicks']:,} clicks in "
        f"{ovo['online_decisions']:,} ({_pct(ovo['online_ctr'])}, 95 % interval "
        f"{_pct(olo)} to {_pct(ohi)}). The offline IPS estimate was {_pct(ips['value'])} "
        f"[{_pct(ips['low'])}, {_pct(ips['high'])}]: the online figure is "
        f"{'inside' if inside else 'OUTSIDE'} its interval (target: inside); SNIPS "
        f"{_pct(snips['value'])}, online "
        f"{'inside' if ovo['online_within_snips_ci'] else 'outside'} its interval.",
        "",
        f"Times: training {r['seconds']['train']:.1f} s, evaluation "
        f"{r['seconds']['evaluate']:.1f} s (both as subprocesses, reading the log from Redis). "
        f"`persona train` said: {r['train_output'].splitlines()[0]}",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run one turn and write it into docs/model-quality.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a small turn (about a minute)")
    parser.add_argument("--visitors", type=int, default=5000)
    parser.add_argument("--decisions", type=int, default=40000)
    parser.add_argument("--rate", type=float, default=800.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(REPO_DIR / "docs" / "model-quality.md"))
    args = parser.parse_args()
    visitors, decisions = (1000, 8000) if args.quick else (args.visitors, args.decisions)
    config = LoopConfig(visitors=visitors, decisions=decisions, rate=args.rate, seed=args.seed)
    command = "python -m loadtests.bench_learning" + (" --quick" if args.quick else "")
    with tempfile.TemporaryDirectory(prefix="persona-loop-") as tmp:
        result = run(config, Path(tmp))
    save_result("loop", result)
    write_section(
        Path(args.out), SECTION, "## One turn of the loop", render(result, command), HEADER
    )
    print(render(result, command))
    return 0


HEADER = """# Model quality

How well the learning loop works, measured on the simulator (`models/live.py`)
against a real service. Written by the benchmark scripts named in each section;
see [models](models.md) for how training, evaluation and rollout work.
"""

if __name__ == "__main__":
    raise SystemExit(main())

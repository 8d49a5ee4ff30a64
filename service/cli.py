"""The ``persona`` command (also ``python -m service``).

``persona`` or ``persona serve`` runs the service; ``persona compile-model``
builds the compiled predictor into the cache (used by the Dockerfile);
``persona settings`` prints every setting as a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service import logs
from service.admin import cli as admin_cli
from service.http.server import PortUnavailable
from service.local_redis import LocalRedis, RedisNotAvailable
from service.scoring.bundle import BundleError, load_bundle
from service.scoring.predictor import compile_bundle
from service.secrets_store import SECRETS_FILE, dev_secrets, stored_secrets
from service.serve import run_loop, serve_until_signal, serve_workers
from service.settings import SPECS, Settings, SettingsError, load_settings
from service.store.address import parse_redis_url, redis_client_for

if TYPE_CHECKING:
    from service.catalog.model import Catalog
    from service.events.archive_store import ArchiveStore

log = logging.getLogger("persona")


def _shown(value: object) -> str:
    return "unset" if value in ("", None) else str(value)


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings", "each option overrides its environment variable")
    for spec in SPECS:
        default = spec.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        group.add_argument(
            spec.option,
            dest=spec.field,
            metavar=spec.env,
            default=None,
            help=f"{spec.help} [env {spec.env}; default: {_shown(shown)}]",
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (every option documented)."""
    parser = argparse.ArgumentParser(
        prog="persona",
        description="Persona: real-time website personalization (decide in ~1 ms).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the service (the default command)",
        description="Run the service: API, metrics, web SDK and demo shop.",
    )
    _add_setting_options(serve)
    comp = sub.add_parser(
        "compile-model",
        help="compile the model bundle into the cache",
        description="Compile PERSONA_MODEL_DIR's model with lleaves "
        "into the cache, so the service starts at once.",
    )
    _add_setting_options(comp)
    exp = sub.add_parser(
        "export-log",
        help="export the event log to Parquet files by day",
        description="Read the event log through a consumer group and write "
        "<out>/day=YYYY-MM-DD/*.parquet; safe to re-run and to kill at any point.",
    )
    exp.add_argument("--out", required=True, help="output folder")
    exp.add_argument("--group", default="export", help="consumer group (default: export)")
    exp.add_argument("--consumer", default="exporter", help="consumer name in the group")
    _add_setting_options(exp)
    _add_setting_options(admin_cli.add_parser(sub))
    _add_setting_options(admin_cli.add_model_parser(sub))
    tr = sub.add_parser(
        "train",
        help="train a model bundle from the logged decisions and clicks",
        description="Read the event log for the last --days, join decisions with clicks "
        "within --attribution-s, rebuild the rows with the serving feature builder, train "
        "LightGBM (time split, early stopping) and write a bundle to --out.",
    )
    tr.add_argument("--out", required=True, help="bundle folder to write")
    tr.add_argument("--days", type=float, default=7.0, help="window of the log to read")
    tr.add_argument("--since", type=float, help="read from this Unix time instead of --days")
    tr.add_argument(
        "--from-parquet",
        metavar="DIR",
        help="read a `persona export-log` folder instead of the log in Redis",
    )
    tr.add_argument("--attribution-s", type=float, default=1800.0, help="click window")
    tr.add_argument(
        "--label",
        choices=("click", "conversion"),
        default="click",
        help="learn clicks on the variant shown, or conversions after the decision",
    )
    _add_setting_options(tr)
    sim = sub.add_parser(
        "simulate",
        help="drive a running service with simulated visitors and report CTRs",
        description="Simulated visitors with latent, drifting tastes visit in sessions (some "
        "log in, some on a second device), view pages, get decisions from --url, and click, "
        "convert and rate by their true preferences; prints the live CTR by policy next to "
        "the oracle's and random's. It calls as the site's server, with the first of "
        "PERSONA_API_KEYS, else the key a local service generated in PERSONA_DATA_DIR "
        "(default .persona); logins carry login tokens made with the first of "
        "PERSONA_SITE_SECRETS (or the generated one).",
    )
    sim.add_argument("--url", default="http://127.0.0.1:8080", help="the service")
    sim.add_argument("--visitors", type=int, default=2000)
    sim.add_argument("--decisions", type=int, default=10000)
    sim.add_argument("--rate", type=float, default=200.0, help="decisions per second")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--concurrency", type=int, default=4, help="sessions at once")
    sim.add_argument("--out", metavar="FILE", help="also write the summary (JSON) to FILE")
    _add_setting_options(sim)
    ev = sub.add_parser(
        "evaluate",
        help="estimate a candidate model's click rate from the log (IPS, SNIPS)",
        description="Rebuild every logged decision's candidates, estimate the click rate of "
        "the live policy, the candidate (greedy), popularity and random with IPS and "
        "self-normalized IPS (95 %% intervals), and flag the candidate (exit status 3) when "
        "it is worse than live by more than --margin.",
    )
    ev.add_argument("--model", required=True, help="candidate bundle folder")
    ev.add_argument("--days", type=float, default=7.0, help="window of the log to read")
    ev.add_argument("--attribution-s", type=float, default=1800.0, help="click window")
    ev.add_argument(
        "--label",
        choices=("click", "conversion"),
        help="the outcome to estimate (default: the one the candidate learned)",
    )
    ev.add_argument("--margin", type=float, default=0.0, help="tolerated CTR shortfall")
    ev.add_argument("--since", type=float, help="read from this Unix time instead of --days")
    ev.add_argument(
        "--from-parquet",
        metavar="DIR",
        help="read a `persona export-log` folder instead of the log in Redis",
    )
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_setting_options(ev)
    _add_archive_parser(sub)
    sub.add_parser("settings", help="print every setting as a Markdown table")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, str] = {
        spec.field: value
        for spec in SPECS
        if (value := getattr(args, spec.field, None)) is not None
    }
    return load_settings(os.environ, overrides)


def settings_table() -> str:
    """Every setting as a Markdown table (for the README)."""
    lines = ["| variable | option | default | meaning |", "|---|---|---|---|"]
    for spec in SPECS:
        default = spec.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        if spec.field == "model_dir":
            shown = "models/default"
        elif spec.field == "catalog_path":
            shown = "service/data/demo_catalog.json"
        shown = "(unset)" if shown in ("", None) else f"`{shown}`"
        lines.append(f"| `{spec.env}` | `{spec.option}` | {shown} | {spec.help} |")
    return "\n".join(lines)


def _compile(settings: Settings) -> int:
    try:
        bundle = load_bundle(settings.model_dir)
    except BundleError as exc:
        print(f"persona: {exc}", file=sys.stderr)
        return 1
    path = compile_bundle(bundle, settings.effective_cache_dir)
    print(f"compiled model {bundle.manifest.version} -> {path}")
    return 0


def _export(settings: Settings, out: str, group: str, consumer: str) -> int:
    import asyncio
    from pathlib import Path

    from service.events.export import export_once
    from service.events.log import LogReader

    if settings.redis_url is None:
        print("persona: export-log needs PERSONA_REDIS_URL", file=sys.stderr)
        return 2

    async def run() -> int:
        client = redis_client_for(settings.redis_url or "", timeout_s=30)
        try:
            return await export_once(LogReader(client, group, consumer), Path(out))
        finally:
            await client.aclose()

    written = asyncio.run(run())
    print(f"exported {written} events to {out}")
    return 0


def _add_archive_parser(sub: Any) -> None:
    arc = sub.add_parser(
        "archive",
        help="archive the event log to PERSONA_ARCHIVE_URL continuously, and trim it",
        description="Write the event log to Parquet files under PERSONA_ARCHIVE_URL "
        "(date=YYYY-MM-DD/part-*.parquet) as the consumer group 'archive', acknowledging "
        "entries once their file is durable, and trim Redis to PERSONA_LOG_WINDOW_S (never "
        "past what is archived) and PERSONA_LOG_MEMORY_LIMIT_MB. Serves its metrics at "
        "/metrics; SIGTERM ends it after the pass under way.",
    )
    arc.add_argument("--consumer", help="consumer name in the group (default: the host name)")
    arc.add_argument(
        "--metrics-host", help="address of the metrics endpoint (default: PERSONA_HOST)"
    )
    arc.add_argument(
        "--metrics-port", type=int, default=8081, help="port of the metrics endpoint (8081)"
    )
    arc.add_argument("--once", action="store_true", help="archive what is there, trim, exit")
    arc.add_argument(
        "--drop-group",
        action="store_true",
        help="stop archiving for good: delete the group (the window then trims alone)",
    )
    _add_setting_options(arc)


def _archive(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from service.events import archive_process
    from service.events.archive import consumer_name

    if settings.redis_url is None:
        print("persona: archive needs PERSONA_REDIS_URL", file=sys.stderr)
        return 2
    if args.drop_group:
        dropped = asyncio.run(archive_process.drop_group(settings))
        print(f"dropped the archive group from {dropped} partitions")
        return 0
    if settings.archive_url is None:
        print("persona: archive needs PERSONA_ARCHIVE_URL", file=sys.stderr)
        return 2
    try:
        archived, failures = asyncio.run(
            archive_process.archive(
                settings,
                args.consumer or consumer_name(pid=False),
                args.metrics_host or settings.host,
                args.metrics_port,
                settings.archive_interval_s,
                once=args.once,
            )
        )
    except (OSError, ValueError) as exc:  # the metrics port taken, the archive URL refused
        print(f"persona: archive: {exc}", file=sys.stderr)
        return 2
    print(f"archived {archived} entries to {settings.archive_url}")
    return 1 if args.once and failures else 0


def _archive_store(settings: Settings) -> ArchiveStore | None:
    from service.events.archive_store import open_store

    return open_store(settings.archive_url) if settings.archive_url is not None else None


def _file_catalog(settings: Settings) -> Catalog | None:
    """The catalog file's catalog (decisions made before any admin version use it)."""
    from service.catalog.loader import CatalogError, parse_catalog

    try:
        return parse_catalog(settings.catalog_path.read_bytes())
    except (OSError, CatalogError):
        return None


def _log_window(
    settings: Settings, days: float, since: float | None = None, parquet: str | None = None
) -> tuple[Iterable[dict[str, Any]], Callable[[str], Catalog | None]]:
    """The log entries since ``since`` (or of the last ``days``) and a catalog resolver.

    From Redis, or from a ``persona export-log`` folder when ``parquet`` is given
    (admin catalog versions still come from Redis when PERSONA_REDIS_URL is set).
    """
    import asyncio
    import time
    from pathlib import Path

    from models.fromlog import catalog_resolver, read_log
    from service.events.export import read_exported

    file_catalog = _file_catalog(settings)
    start = since if since is not None else time.time() - days * 86400

    async def load(read: bool) -> tuple[list[dict[str, Any]], Callable[[str], Catalog | None]]:
        client = redis_client_for(settings.redis_url or "", timeout_s=60)
        try:
            entries = await read_log(client, start, _archive_store(settings)) if read else []
            return entries, await catalog_resolver(client, file_catalog)
        finally:
            await client.aclose()

    if parquet is None:
        return asyncio.run(load(True))
    if settings.redis_url is not None:
        return read_exported(Path(parquet), start), asyncio.run(load(False))[1]
    known = {} if file_catalog is None else {file_catalog.version: file_catalog}
    return read_exported(Path(parquet), start), known.get


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    import orjson

    from models.live import simulate

    stored = _stored_dev_secrets(settings)
    api_keys = settings.api_keys or tuple(stored.get("api_keys") or ())
    site_secrets = settings.site_secrets or tuple(stored.get("site_secrets") or ())
    if not api_keys:
        print(
            "persona: simulate calls the service as the site's server: set PERSONA_API_KEYS "
            "(or run it beside a local service, whose generated key it reads from "
            f"{settings.data_dir / SECRETS_FILE})",
            file=sys.stderr,
        )
        return 2
    summary = asyncio.run(
        simulate(
            args.url,
            args.visitors,
            args.decisions,
            args.rate,
            args.seed,
            concurrency=args.concurrency,
            api_key=api_keys[0],
            site_secret=site_secrets[0] if site_secrets else None,
            progress=True,
        )
    )
    text = orjson.dumps(summary.report(), option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0 if summary.errors == 0 else 1


def _stored_dev_secrets(settings: Settings) -> dict[str, Any]:
    """The secrets a local service generated for itself under PERSONA_DATA_DIR ({} if none)."""
    try:
        return stored_secrets(settings.data_dir)
    except (OSError, ValueError):
        return {}


def _evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    import lightgbm
    import orjson

    from models.evaluate import evaluate, logged_decisions, unseen_by
    from service.scoring.bundle import MODEL_FILE, BundleError, load_bundle

    if settings.redis_url is None and args.from_parquet is None:
        print("persona: evaluate needs PERSONA_REDIS_URL or --from-parquet", file=sys.stderr)
        return 2
    try:
        bundle = load_bundle(Path(args.model))
    except BundleError as exc:
        print(f"persona: {exc}", file=sys.stderr)
        return 2
    booster = lightgbm.Booster(model_file=str(Path(args.model) / MODEL_FILE))
    entries, resolve = _log_window(settings, args.days, args.since, args.from_parquet)
    label = args.label or bundle.manifest.training.get("label", "click")
    logged = unseen_by(
        logged_decisions(
            entries, resolve, settings.affinity_half_life_s, args.attribution_s, label
        ),
        bundle.manifest.training,
    )
    try:
        report = evaluate(logged, lambda x: booster.predict(x, num_threads=1), args.margin)
    except ValueError as exc:
        print(f"persona: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(report.to_json(bundle.manifest.version)).decode())
        return 3 if report.flagged else 0
    print(f"candidate {bundle.manifest.version} on {report.decisions:,} logged decisions")
    print(
        f"  shown variants: AUC {report.candidate_auc:.4f}, log loss {report.candidate_logloss:.4f}"
    )
    for name, est in report.estimates.items():
        i, s = est["ips"], est["snips"]
        print(
            f"  {name:<10} IPS {i.value:.4f} [{i.low:.4f}, {i.high:.4f}]   "
            f"SNIPS {s.value:.4f} [{s.low:.4f}, {s.high:.4f}]"
        )
    if report.flagged:
        print(f"FLAGGED: the candidate is worse than live by more than {args.margin}")
        return 3
    return 0


def _train(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio
    import time
    from pathlib import Path

    from models.fromlog import LogRows, rows_from_log, rows_from_redis, train_from_rows

    if settings.redis_url is None and args.from_parquet is None:
        print("persona: train needs PERSONA_REDIS_URL or --from-parquet", file=sys.stderr)
        return 2
    half_life_s = settings.affinity_half_life_s
    start = args.since if args.since is not None else time.time() - args.days * 86400

    async def stream() -> LogRows:
        client = redis_client_for(settings.redis_url or "", timeout_s=60)
        try:
            return await rows_from_redis(
                client,
                start,
                _file_catalog(settings),
                half_life_s,
                args.attribution_s,
                args.label,
                _archive_store(settings),
            )
        finally:
            await client.aclose()

    clock = time.monotonic()
    if args.from_parquet is None:
        rows = asyncio.run(stream())
    else:
        entries, resolve = _log_window(settings, args.days, start, args.from_parquet)
        rows = rows_from_log(entries, resolve, half_life_s, args.attribution_s, args.label)
    read_s = time.monotonic() - clock
    print(
        f"{len(rows.y):,} decisions with {int(rows.y.sum()):,} {rows.label}s; "
        f"skipped {rows.skipped}"
    )
    clock = time.monotonic()
    try:
        manifest = train_from_rows(rows, Path(args.out))
    except ValueError as exc:
        print(f"persona: {exc}", file=sys.stderr)
        return 1
    print(f"model {manifest.version} -> {args.out}: {manifest.metrics}")
    print(
        f"read and rebuilt the rows in {read_s:.1f} s, trained and compiled in "
        f"{time.monotonic() - clock:.1f} s"
    )
    return 0


def _with_dev_secrets(settings: Settings) -> Settings:
    """Settings with generated secrets (kept under PERSONA_DATA_DIR) where none are set."""
    if (
        settings.cookie_secrets
        and settings.customer_id_key
        and settings.site_secrets
        and settings.api_keys
    ):
        return settings
    stored = dev_secrets(settings.data_dir)
    log.warning(
        "cookie, customer-id, site secrets or API keys are not all set: using generated ones "
        "from %s (set PERSONA_COOKIE_SECRETS, PERSONA_CUSTOMER_ID_KEY, PERSONA_SITE_SECRETS "
        "and PERSONA_API_KEYS in production)",
        settings.data_dir / SECRETS_FILE,
    )
    return dataclasses.replace(
        settings,
        cookie_secrets=settings.cookie_secrets or tuple(stored["cookie_secrets"]),
        customer_id_key=settings.customer_id_key or stored["customer_id_key"],
        site_secrets=settings.site_secrets or tuple(stored["site_secrets"]),
        api_keys=settings.api_keys or tuple(stored["api_keys"]),
    )


def _serve(settings: Settings) -> int:
    local: LocalRedis | None = None
    settings = _with_dev_secrets(settings)
    try:
        bundle = load_bundle(settings.model_dir)
        compile_bundle(bundle, settings.effective_cache_dir)
    except BundleError as exc:
        log.error("%s; the service will serve defaults until a model is available", exc)
    except Exception as exc:
        log.warning("cannot compile the model (%s); LightGBM's predictor will be used", exc)
    if settings.redis_url is None:
        local = LocalRedis(
            settings.data_dir / "redis",
            binary=settings.redis_server_bin,
            appendfsync=settings.redis_appendfsync,
            maxmemory_mb=settings.redis_maxmemory_mb,
        )
        try:
            url = local.start()
        except RedisNotAvailable as exc:
            print(f"persona: {exc}", file=sys.stderr)
            return 2
        settings = dataclasses.replace(settings, redis_url=url)
        log.info(
            "started a private redis-server at %s (data in %s, AOF on, maxmemory %d MB)",
            url,
            local.data_dir,
            local.maxmemory_mb,
        )
    base = f"http://{settings.host}:{settings.port}"
    redis_shown = parse_redis_url(settings.redis_url or "").redacted()

    def announce() -> None:
        print(
            f"Persona is serving on {base} ({settings.workers} worker(s))\n"
            f"  API:      POST {base}/v1/decide   (OpenAPI: {base}/openapi.json)\n"
            f"  metrics:  {base}/metrics   health: {base}/healthz   ready: {base}/readyz\n"
            f"  demo shop: {base}/demo/   workspace: {base}/admin   SDK: {base}/sdk/v1/persona.js\n"
            f"  Redis:    {redis_shown}\n"
            "Press Ctrl+C to stop.",
            flush=True,
        )

    try:
        if settings.workers == 1:
            run_loop(
                lambda: serve_until_signal(settings, on_listening=announce),
                settings.uvloop,
            )
            return 0
        with tempfile.TemporaryDirectory(prefix="persona-metrics-") as shared:
            # prometheus-client's multiprocess mode is chosen by this variable, which the
            # spawned workers inherit; they are also told the folder itself
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
            return serve_workers(settings, announce, Path(shared))
    except PortUnavailable as exc:
        print(f"persona: {exc}", file=sys.stderr)
        return 2
    finally:
        if local is not None:
            local.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``persona`` and ``python -m service``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "serve")
    args = build_parser().parse_args(args_list)
    if args.command == "settings":
        print(settings_table())
        return 0
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"persona: invalid setting: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "compile-model":
        return _compile(settings)
    if args.command == "archive":
        return _archive(settings, args)
    if args.command == "export-log":
        return _export(settings, args.out, args.group, args.consumer)
    if args.command == "train":
        return _train(settings, args)
    if args.command == "simulate":
        return _simulate(settings, args)
    if args.command == "evaluate":
        return _evaluate(settings, args)
    if args.command == "model":
        return admin_cli.run_model(settings.redis_url, args)
    if args.command == "admin-token":
        return admin_cli.run(settings.redis_url, args)
    return _serve(settings)

"""The Grafana dashboard of the service, written from one list of panels.

``python deploy/grafana/build.py`` writes ``deploy/grafana/persona.json``, the
dashboard to import into Grafana (dashboard schema version 39, which Grafana 11
loads as it is; the compose stack provisions it from this folder). With
``--check`` it writes nothing and exits 1 when the file is not this builder's
output; a test runs the same comparison, and another has a real Prometheus
answer every panel's query while it scrapes the service under traffic.

Each panel is declared once below (its title, what it shows, its PromQL);
the builder adds Grafana's boilerplate, the layout and the template
variables: ``datasource`` (any Prometheus data source), ``job`` and
``instance`` (one, several or all of those with ``persona_*`` series, so a
``persona archive`` scraped as a job of its own is among them). Every query
selects ``job=~"$job",instance=~"$instance"``.

**Why plain JSON from this builder, not grafana-foundation-sdk.** The SDK
would be a dependency of the development tools for one file, with versions
tied to Grafana releases (``<build epoch>!<grafana version>``), while the
lock files pin every package the project installs; its typed builders
check field names, but not what matters here: that each query is valid
PromQL over the metrics the service exports and that it returns data. The
tests check that against a real Prometheus. So the builder is the standard
library only, and its output is the JSON Grafana exports, readable in a
review and importable as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent / "persona.json"
UID = "persona-service"
STAGES = ("identify", "redis", "features", "score", "serialize")
"""The decide stages (``service.metrics.STAGES``; a test checks they are the same)."""
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCOPE = 'job=~"$job",instance=~"$instance"'
"""The matchers every query starts with: the template variables' choice."""
WINDOW = "$__rate_interval"
WIDTH = 24


def sel(metric: str, matchers: str = "") -> str:
    """``metric`` with the dashboard's job and instance matchers, and ``matchers`` after them."""
    extra = f",{matchers}" if matchers else ""
    return f"{metric}{{{SCOPE}{extra}}}"


def rate(metric: str, matchers: str = "") -> str:
    """The per-second rate of a counter over Grafana's rate interval."""
    return f"rate({sel(metric, matchers)}[{WINDOW}])"


def quantile(q: float, histogram: str, by: str = "", matchers: str = "") -> str:
    """The ``q`` quantile of a histogram (``histogram`` without ``_bucket``), per ``by``."""
    labels = f"le, {by}" if by else "le"
    buckets = rate(f"{histogram}_bucket", matchers)
    return f"histogram_quantile({q}, sum by ({labels}) ({buckets}))"


def share(part: str, whole: str, by: str = "") -> str:
    """The share of a counter's rate that has the matchers ``part``, per ``by``: 0 where no
    series has them yet, nothing where there was no traffic (instead of 0/0)."""
    agg = f"sum by ({by}) " if by else "sum"
    total = f"{agg}({rate(whole)})"
    return f"({agg}({rate(whole, part)}) or 0 * {total}) / ({total} > 0)"


def age(gauge: str, how: str = "max") -> str:
    """Seconds since the Unix timestamp a gauge holds, per instance (``how`` over processes)."""
    return f"time() - {how} by (instance) ({sel(gauge)})"


@dataclass(frozen=True)
class Query:
    """One query of a panel."""

    expr: str
    legend: str = ""
    table: bool = False
    """An instant query read as a table (one row per series)."""
    heatmap: bool = False
    """Cumulative histogram buckets (``le``) for a heatmap."""


@dataclass(frozen=True)
class Panel:
    """A panel: its kind, its queries, and how it reads."""

    title: str
    description: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 8
    height: int = 8
    stacked: bool = False
    bars: bool = False
    mappings: tuple[dict[str, Any], ...] = ()
    thresholds: tuple[tuple[float | None, str], ...] = ((None, "green"),)
    overrides: tuple[dict[str, Any], ...] = ()
    transformations: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Row:
    """A titled row of panels, laid out left to right."""

    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def quantiles(histogram: str, by: str = "", matchers: str = "") -> tuple[Query, ...]:
    """p50, p99 and p99.9 of a histogram, legends naming the quantile and ``by``'s labels."""
    suffix = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(",") if label.strip())
    return tuple(
        Query(quantile(q, histogram, by, matchers), f"{name} {suffix}".strip())
        for q, name in ((0.5, "p50"), (0.99, "p99"), (0.999, "p99.9"))
    )


def latency_by_endpoint(q: float, name: str) -> Panel:
    """The ``q`` quantile of the HTTP latency, one line per endpoint."""
    return Panel(
        f"Latency {name} by endpoint",
        f"The {name} of the time to answer, measured in the service (from the request's "
        "arrival to its answer), per endpoint.",
        (Query(quantile(q, "persona_http_request_duration_seconds", "endpoint"), "{{endpoint}}"),),
        unit="s",
    )


def stage_quantile(q: float, name: str) -> Panel:
    """The ``q`` quantile of each decide stage."""
    return Panel(
        f"Decide stages {name}",
        f"The {name} of each stage of a decide call: identify (cookie, consent), redis (the "
        "profile read), features, score (the model), serialize (the answer).",
        (Query(quantile(q, "persona_decide_stage_duration_seconds", "stage"), "{{stage}}"),),
        unit="s",
    )


def heatmap(title: str, description: str, histogram: str, matchers: str) -> Panel:
    """A heatmap of a histogram's buckets (requests per second in each)."""
    buckets = rate(f"{histogram}_bucket", matchers)
    return Panel(
        title,
        description,
        (Query(f"sum by (le) ({buckets})", "{{le}}", heatmap=True),),
        kind="heatmap",
        unit="s",
    )


def timestamp_age(title: str, description: str, gauge: str, how: str = "max") -> Panel:
    """A stat of the seconds since a timestamp gauge (``never`` while it is 0)."""
    return Panel(
        title,
        description,
        (Query(age(gauge, how), "{{instance}}"),),
        kind="stat",
        unit="s",
        mappings=(
            {
                "type": "range",
                "options": {"from": 1e9, "to": None, "result": {"index": 0, "text": "never"}},
            },
        ),
        thresholds=((None, "green"), (300, "orange"), (3600, "red")),
    )


def state_mappings(states: dict[int, tuple[str, str]]) -> tuple[dict[str, Any], ...]:
    """Value mappings of a gauge's states to texts and colours."""
    options = {
        str(value): {"index": i, "text": text, "color": color}
        for i, (value, (text, color)) in enumerate(states.items())
    }
    return ({"type": "value", "options": options},)


ROWS: tuple[Row, ...] = (
    Row(
        "Requests: rate, errors, latency",
        (
            Panel(
                "Request rate by endpoint",
                "Answered requests per second, per endpoint.",
                (
                    Query(
                        f"sum by (endpoint) ({rate('persona_http_responses_total')})",
                        "{{endpoint}}",
                    ),
                ),
                unit="reqps",
                width=12,
                stacked=True,
            ),
            Panel(
                "Error share by endpoint",
                "The share of answers with a 4xx status (the caller's mistake, a rate limit, a "
                "wrong key) and with a 5xx status (the service's or Redis' trouble), per "
                "endpoint. A decide call that falls back still answers 200: see Fallbacks.",
                (
                    Query(
                        share('status=~"4.."', "persona_http_responses_total", "endpoint"),
                        "4xx {{endpoint}}",
                    ),
                    Query(
                        share('status=~"5.."', "persona_http_responses_total", "endpoint"),
                        "5xx {{endpoint}}",
                    ),
                ),
                unit="percentunit",
                width=12,
            ),
            latency_by_endpoint(0.5, "p50"),
            latency_by_endpoint(0.99, "p99"),
            latency_by_endpoint(0.999, "p99.9"),
        ),
    ),
    Row(
        "Decide stages",
        (
            stage_quantile(0.5, "p50"),
            stage_quantile(0.99, "p99"),
            stage_quantile(0.999, "p99.9"),
            heatmap(
                "Decide latency heatmap",
                "Decide calls per second in each latency bucket.",
                "persona_http_request_duration_seconds",
                'endpoint="/v1/decide"',
            ),
            *(
                heatmap(
                    f"Stage {stage} heatmap",
                    f"Decide calls per second in each bucket of the {stage} stage's time.",
                    "persona_decide_stage_duration_seconds",
                    f'stage="{stage}"',
                )
                for stage in STAGES
            ),
        ),
    ),
    Row(
        "Decisions",
        (
            Panel(
                "Decisions by placement and policy",
                "Slot decisions per second: policy model (ranked by the model), explore, "
                "holdout (the default on purpose) or fallback (the default because something "
                "failed). Placement unknown counts names the catalog does not have.",
                (
                    Query(
                        f"sum by (placement, policy) ({rate('persona_decisions_total')})",
                        "{{placement}} {{policy}}",
                    ),
                ),
                unit="ops",
                stacked=True,
            ),
            Panel(
                "Fallbacks by reason",
                "Decisions answered with the slot's default because of a failure or a setting, "
                "per reason (redis_timeout, deadline, unknown_placement, paused, ...).",
                (Query(f"sum by (reason) ({rate('persona_fallbacks_total')})", "{{reason}}"),),
                unit="ops",
                stacked=True,
            ),
            Panel(
                "Overload shedding by endpoint",
                "Requests answered at once because the event loop lagged past its budget "
                "(PERSONA_OVERLOAD_LAG_MS): decide calls get the defaults, event batches a 503.",
                (
                    Query(
                        f"sum by (endpoint) ({rate('persona_overload_shed_total')})",
                        "{{endpoint}}",
                    ),
                ),
                unit="reqps",
            ),
        ),
    ),
    Row(
        "Redis",
        (
            Panel(
                "Redis errors by kind",
                "Failed Redis reads on the decision path per second: redis_timeout (slower "
                "than PERSONA_REDIS_TIMEOUT_MS) or redis_unavailable (refused, or the breaker "
                "is open).",
                (Query(f"sum by (kind) ({rate('persona_redis_errors_total')})", "{{kind}}"),),
                unit="ops",
                bars=True,
            ),
            Panel(
                "Circuit breaker",
                "The breaker on the decision path: closed (Redis is read), open (every "
                "decision falls back at once), half-open (one trial read).",
                (
                    Query(
                        f"max by (instance) ({sel('persona_redis_breaker_state')})",
                        "{{instance}}",
                    ),
                ),
                kind="state-timeline",
                mappings=state_mappings(
                    {0: ("closed", "green"), 1: ("open", "red"), 2: ("half-open", "orange")}
                ),
            ),
            Panel(
                "Redis memory",
                "Memory the private Redis uses, against its maxmemory (0: unlimited).",
                (
                    Query(
                        f"max by (instance) ({sel('persona_redis_memory_used_bytes')})",
                        "used {{instance}}",
                    ),
                    Query(
                        f"max by (instance) ({sel('persona_redis_memory_max_bytes')})",
                        "maxmemory {{instance}}",
                    ),
                ),
                unit="bytes",
            ),
        ),
    ),
    Row(
        "Events and the event log",
        (
            Panel(
                "Events by type and status",
                "Events per second by type and outcome: accepted, duplicate (a replayed id), "
                "rejected (a client bug), ignored (no consent for it).",
                (
                    Query(
                        f"sum by (type, status) ({rate('persona_events_total')})",
                        "{{type}} {{status}}",
                    ),
                ),
                unit="ops",
                stacked=True,
            ),
            Panel(
                "Event ingest latency",
                "Time to validate and store an event batch, until its acknowledgement.",
                quantiles("persona_event_ingest_duration_seconds"),
                unit="s",
            ),
            Panel(
                "Event log entries",
                "Entries in the event log in Redis (all partitions).",
                (Query(f"max by (instance) ({sel('persona_event_log_entries')})", "{{instance}}"),),
            ),
            Panel(
                "Consumer lag by group",
                "Log entries not yet delivered to each consumer group: a growing lag means "
                "the consumer is down or too slow.",
                (
                    Query(
                        f"max by (group) ({sel('persona_event_log_consumer_lag')})",
                        "{{group}}",
                    ),
                ),
            ),
            Panel(
                "Consumer pending by group",
                "Log entries delivered to each consumer group but not acknowledged: a consumer "
                "that died mid-batch; they are delivered again or claimed.",
                (
                    Query(
                        f"max by (group) ({sel('persona_event_log_consumer_pending')})",
                        "{{group}}",
                    ),
                ),
            ),
            Panel(
                "Archived entries",
                "Event-log entries written to the archive per second.",
                (Query(f"sum({rate('persona_archive_entries_total')})", "archived"),),
                unit="ops",
            ),
            timestamp_age(
                "Since the last archive pass",
                "Seconds since the archiver last wrote and acknowledged a batch (or found "
                "nothing to do).",
                "persona_archive_last_success_timestamp_seconds",
            ),
            Panel(
                "Trimmed log entries by reason",
                "Entries removed from the log in Redis per second: window (archived and older "
                "than the window) or memory_limit (forced by the memory limit, maybe "
                "unarchived: training data lost).",
                (
                    Query(
                        f"sum by (reason) ({rate('persona_event_log_trimmed_entries_total')})",
                        "{{reason}}",
                    ),
                ),
                unit="ops",
                width=16,
            ),
        ),
    ),
    Row(
        "Versions",
        (
            Panel(
                "Model and catalog per process",
                "What each process serves now: the model version, how it is evaluated "
                "(lleaves: compiled; booster: LightGBM's predictor while the compiled one "
                "builds, or because compiling failed), its feature schema and the catalog "
                "version. With several workers, pid names the process.",
                (
                    Query(
                        "max by (instance, pid, model, predictor, schema_hash) (label_replace("
                        f'{sel("persona_model_info")}, "model", "$1", "version", "(.*)"))',
                        table=True,
                    ),
                    Query(
                        "max by (instance, pid, catalog) (label_replace("
                        f'{sel("persona_catalog_info")}, "catalog", "$1", "version", "(.*)"))',
                        table=True,
                    ),
                ),
                kind="table",
                width=12,
                transformations=(
                    {"id": "merge", "options": {}},
                    {
                        "id": "organize",
                        "options": {
                            "excludeByName": {"Time": True, "Value #A": True, "Value #B": True},
                            "indexByName": {
                                "instance": 0,
                                "pid": 1,
                                "model": 2,
                                "predictor": 3,
                                "schema_hash": 4,
                                "catalog": 5,
                            },
                            "renameByName": {"schema_hash": "feature schema"},
                        },
                    },
                ),
            ),
            Panel(
                "Model loaded per process",
                "Whether each process has a model: without one every decision falls back "
                "(no_model).",
                (
                    Query(
                        f"min by (instance, pid) ({sel('persona_model_loaded')})",
                        "{{instance}} {{pid}}",
                    ),
                ),
                kind="state-timeline",
                width=12,
                mappings=state_mappings({0: ("no model", "red"), 1: ("loaded", "green")}),
            ),
            timestamp_age(
                "Since the last config sync",
                "Seconds since the process that is furthest behind last confirmed it serves "
                "the published configuration (catalog, models): it should stay near "
                "PERSONA_CONFIG_POLL_MS.",
                "persona_config_last_sync_timestamp_seconds",
                how="min",
            ),
            Panel(
                "Shadow agreement",
                "The share of decisions scored by the shadow model whose top variant is the one "
                "served (left axis), and how many decisions per second the shadow scores "
                "(right axis). No data while no shadow model runs.",
                (
                    Query(
                        share('agreement="agree"', "persona_shadow_decisions_total"),
                        "agree",
                    ),
                    Query(f"sum({rate('persona_shadow_decisions_total')})", "shadowed"),
                ),
                unit="percentunit",
                width=16,
                overrides=(
                    {
                        "matcher": {"id": "byFrameRefID", "options": "B"},
                        "properties": [
                            {"id": "unit", "value": "ops"},
                            {"id": "custom.axisPlacement", "value": "right"},
                        ],
                    },
                ),
            ),
        ),
    ),
    Row(
        "Processes",
        (
            Panel(
                "CPU per process",
                "CPU time per second of each process (100 % is one core).",
                (Query(rate("process_cpu_seconds_total"), "{{instance}} {{pid}}"),),
                unit="percentunit",
            ),
            Panel(
                "Resident memory per process",
                "Resident memory of each process.",
                (Query(sel("process_resident_memory_bytes"), "{{instance}} {{pid}}"),),
                unit="bytes",
            ),
            Panel(
                "GC collections per process",
                "Python garbage collections per second, per process and generation.",
                (
                    Query(
                        "sum by (instance, pid, generation) "
                        f"({rate('python_gc_collections_total')})",
                        "{{instance}} {{pid}} gen {{generation}}",
                    ),
                ),
                unit="ops",
            ),
            Panel(
                "Event loop lag",
                "How late the event loop runs a timer, over all processes: past "
                "PERSONA_OVERLOAD_LAG_MS the service sheds load.",
                quantiles("persona_event_loop_lag_seconds", "instance"),
                unit="s",
                width=12,
            ),
            Panel(
                "Worker restarts",
                "Worker processes the supervisor started again, by reason (crashed, rolling).",
                (
                    Query(
                        "sum by (instance, reason) "
                        f"(increase({sel('persona_worker_restarts_total')}[{WINDOW}]))",
                        "{{instance}} {{reason}}",
                    ),
                ),
                width=12,
                bars=True,
            ),
        ),
    ),
)


def _target(query: Query, ref: str) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": not query.table,
        "instant": query.table,
        "refId": ref,
    }
    if query.table:
        target["format"] = "table"
    elif query.heatmap:
        target["format"] = "heatmap"
    return target


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "mappings": list(panel.mappings),
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": color, "value": value} for value, color in panel.thresholds],
        },
    }
    if panel.kind == "timeseries":
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {
            "drawStyle": "bars" if panel.bars else "line",
            "fillOpacity": 30 if panel.stacked or panel.bars else 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if panel.stacked else "none"},
            "axisSoftMin": 0,
        }
    elif panel.kind == "state-timeline":
        defaults["color"] = {"mode": "thresholds"}
        defaults["custom"] = {"fillOpacity": 80, "lineWidth": 0}
    elif panel.kind == "stat":
        defaults["color"] = {"mode": "thresholds"}
    elif panel.kind == "table":
        defaults["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}}
    elif panel.kind == "heatmap":
        defaults["custom"] = {
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "scaleDistribution": {"type": "linear"},
        }
    return {"defaults": defaults, "overrides": list(panel.overrides)}


def _options(panel: Panel) -> dict[str, Any]:
    if panel.kind == "heatmap":
        return {
            "calculate": False,
            "cellGap": 1,
            "color": {
                "mode": "scheme",
                "scheme": "Oranges",
                "exponent": 0.5,
                "fill": "dark-orange",
                "reverse": False,
                "scale": "exponential",
                "steps": 64,
            },
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "filterValues": {"le": 1e-9},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto", "value": "req/s"},
            "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": True},
            "yAxis": {"axisPlacement": "left", "reverse": False, "unit": panel.unit},
        }
    if panel.kind == "stat":
        return {
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        }
    if panel.kind == "table":
        return {"cellHeight": "sm", "footer": {"show": False}, "showHeader": True}
    legend = {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True}
    if panel.kind == "state-timeline":
        return {
            "alignValue": "center",
            "legend": legend,
            "mergeValues": True,
            "rowHeight": 0.9,
            "showValue": "auto",
            "tooltip": {"mode": "single", "sort": "none"},
        }
    return {"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}}


def _variables() -> list[dict[str, Any]]:
    """The data source, and the jobs and instances that export Persona's metrics (the service,
    and ``persona archive`` where it runs as a process of its own)."""

    def label_values(label: str, filters: dict[str, str]) -> dict[str, Any]:
        """A multi-value variable of a label's values among the series ``filters`` match."""
        selector = "{" + ",".join(f'{k}=~"{v}"' for k, v in filters.items()) + "}"
        query = f"label_values({selector}, {label})"
        return {
            "type": "query",
            "name": label,
            "label": label,
            "datasource": DATASOURCE,
            "definition": query,
            "query": {
                "qryType": 1,  # label values, in Grafana's variable query editor
                "label": label,
                "metric": "",
                "labelFilters": [{"label": k, "op": "=~", "value": v} for k, v in filters.items()],
                "query": query,
                "refId": "PrometheusVariableQueryEditor-VariableQuery",
            },
            "refresh": 2,
            "regex": "",
            "sort": 1,
            "hide": 0,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [],
        }

    persona = {"__name__": "persona_.+"}
    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "regex": "",
            "hide": 0,
            "refresh": 1,
            "current": {},
            "options": [],
        },
        label_values("job", persona),
        label_values("instance", {**persona, "job": "$job"}),
    ]


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    panels: list[dict[str, Any]] = []
    y = 0
    for row in ROWS:
        panels.append(
            {
                "type": "row",
                "id": len(panels) + 1,
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x = line_height = 0
        for panel in row.panels:
            if x + panel.width > WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panels.append(
                {
                    "type": panel.kind,
                    "id": len(panels) + 1,
                    "title": panel.title,
                    "description": panel.description,
                    "datasource": DATASOURCE,
                    "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
                    "fieldConfig": _field_config(panel),
                    "options": _options(panel),
                    "targets": [_target(q, chr(ord("A") + i)) for i, q in enumerate(panel.queries)],
                    "transformations": list(panel.transformations),
                }
            )
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "Persona: requests, decide stages, decisions, Redis, events and the "
        "event log, versions, processes. Written by deploy/grafana/build.py.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["persona"],
        "templating": {"list": _variables()},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": "Persona",
        "uid": UID,
        "version": 1,
        "weekStart": "",
    }


def render() -> str:
    """The dashboard file's text."""
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard (or, with ``--check``, compare it with the file); the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--out", type=Path, default=OUTPUT, help=f"default {OUTPUT}")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is not the builder's output: run {Path(__file__).name}")
            return 1
        return 0
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

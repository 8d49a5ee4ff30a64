"""The Prometheus rules of deploy/prometheus: valid, unit-tested, and true to the service.

promtool (Debian's ``prometheus`` package, installed by .ci/run) checks every
rules file and runs every unit-test file; the rest reads the rules beside
service/metrics.py and docs/operations.md: every alert is tested firing and
quiet, every metric a rule reads is one the service exposes, every fallback
reason is classified for the availability SLO, every alert's runbook exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from service.metrics import FALLBACK_REASONS, Metrics
from service.settings import REPO_DIR

PROMETHEUS_DIR = REPO_DIR / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
OPERATIONS = REPO_DIR / "docs" / "operations.md"
RUNBOOK_BASE = "https://github.com/persona-dev/persona/blob/main/docs/operations.md#"
SLO_WINDOWS = {"5m", "30m", "1h", "2h", "6h", "1d", "3d"}
SERVICE_FAILURES = {
    "redis_timeout",
    "redis_unavailable",
    "no_model",
    "score_error",
    "no_catalog",
    "internal_error",
    "deadline",
    "overloaded",
}
"""Fallback reasons that count against the availability SLO (the rest are choices)."""
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
STANDARD_METRICS = {"up", "process_start_time_seconds"}
"""Series Prometheus or a standard process collector provides, not service/metrics.py."""


def promtool() -> str:
    """promtool's path; the test fails (never skips) without it."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: `apt-get install prometheus` (Debian's package, "
            "which .ci/run installs) provides it"
        )
    return path


def rules() -> list[dict[str, Any]]:
    """Every rule of every rules file."""
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend(group["rules"])
    return out


def alerts() -> dict[str, dict[str, Any]]:
    """The alerting rules by name."""
    return {r["alert"]: r for r in rules() if "alert" in r}


def alert_cases() -> Iterator[tuple[str, list[Any]]]:
    """(alert name, expected alerts) of every alert_rule_test case in the unit tests."""
    for path in TEST_FILES:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                yield case["alertname"], case.get("exp_alerts") or []


def exposed_names() -> set[str]:
    """Every sample name a fresh service registry can expose (labelled or not yet)."""
    registry = CollectorRegistry()
    Metrics(registry)
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("_count", "_sum", ""),
    }
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions, labels and keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", text)
    return {n for n in names if n.lower() not in PROMQL_WORDS}


def runbook_anchors() -> list[str]:
    """GitHub's anchors of the headings in docs/operations.md's alerts section."""
    text = OPERATIONS.read_text()
    section = re.search(r"^## Alerts and runbooks\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section is not None, "docs/operations.md has no '## Alerts and runbooks' section"
    headings = re.findall(r"^###+ (.+)$", section.group(1), re.M)
    return [re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings]


@pytest.fixture(scope="module")
def unit_test_runs() -> dict[Path, subprocess.CompletedProcess[str]]:
    """`promtool test rules` on every unit-test file, the files run side by side."""
    tool = promtool()

    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool, "test", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO_DIR,
        )

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(TEST_FILES, pool.map(run, TEST_FILES), strict=True))


def test_the_rules_and_their_tests_are_there() -> None:
    assert {"persona-alerts.yml", "persona-slo.yml"} <= {p.name for p in RULE_FILES}
    assert len(TEST_FILES) >= 4


def test_promtool_checks_every_rules_file() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_FILES), done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(
    path: Path, unit_test_runs: dict[Path, subprocess.CompletedProcess[str]]
) -> None:
    done = unit_test_runs[path]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "FAILED" not in done.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for name, expected in alert_cases():
        (fired if expected else quiet).add(name)
    names = set(alerts())
    assert names - fired == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested not firing"
    assert (fired | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_severity_annotations_and_a_runbook() -> None:
    anchors = runbook_anchors()
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        notes = rule["annotations"]
        assert notes["summary"].strip() and notes["description"].strip(), name
        assert notes["runbook_url"] == RUNBOOK_BASE + name.lower(), name
        assert name.lower() in anchors, f"docs/operations.md has no '### {name}' runbook"
    documented = {a for a in anchors if a.startswith("persona")}
    assert documented == {n.lower() for n in alerts()}, "runbooks of alerts that do not exist"


def test_rules_read_only_series_the_service_exposes() -> None:
    exposed = exposed_names()
    recorded = {r["record"] for r in rules() if "record" in r}
    for rule in rules():
        for name in metric_names(rule["expr"]):
            assert name in exposed | recorded | STANDARD_METRICS, (
                f"{rule.get('alert') or rule.get('record')} reads {name}, which neither "
                "service/metrics.py nor a rule defines"
            )
    read = set().union(*(metric_names(r["expr"]) for r in rules()))
    assert {"persona_fallbacks_total", "persona_event_log_consumer_lag", "up"} <= read


def test_the_name_extraction_sees_metrics_and_only_metrics() -> None:
    expr = (
        'sum by (job, le) (rate(persona_x_bucket{le="0.005", endpoint="/v1/a"}[5m])) '
        "/ on (job) group_left () slo:persona_objective:ratio and up offset 1h > 1e6 "
        "or time() - process_start_time_seconds"
    )
    assert metric_names(expr) == {
        "persona_x_bucket",
        "slo:persona_objective:ratio",
        "up",
        "process_start_time_seconds",
    }


def test_histogram_buckets_named_in_rules_exist() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.observe_request("/v1/decide", 200, 0.0003)
    metrics.flush()
    exposition = generate_latest(metrics.registry).decode()
    buckets = set(re.findall(r'^(\w+_bucket)\{(?:[^}]*,)?le="([^"]+)"', exposition, re.M))
    used = set()
    for rule in rules():
        used |= set(re.findall(r'(\w+_bucket)\{[^}]*le="([^"]+)"', rule["expr"]))
    assert used, "no rule reads a histogram bucket"
    assert used <= buckets, f"bucket bounds the service does not have: {used - buckets}"


def test_every_fallback_reason_is_classified_for_availability() -> None:
    availability = [r["expr"] for r in rules() if r.get("labels", {}).get("slo") == "availability"]
    assert availability
    for expr in (e for e in availability if "persona_fallbacks_total" in e):
        groups = re.findall(r'persona_fallbacks_total\{reason=~"([^"]+)"\}', expr)
        assert len(groups) == 2, expr
        failures, choices = (set(g.split("|")) for g in groups)
        assert failures == SERVICE_FAILURES
        assert failures | choices == set(FALLBACK_REASONS), "a fallback reason is unclassified"
        assert not failures & choices
    # the availability ratio subtracts the choices' rates: each reason's series must exist
    # from the start, before its first fallback
    exposition = generate_latest(Metrics(CollectorRegistry()).registry).decode()
    for reason in FALLBACK_REASONS:
        assert f'persona_fallbacks_total{{reason="{reason}"}} 0.0' in exposition


def test_each_slo_records_every_window_over_that_window() -> None:
    windows: dict[str, set[str]] = {}
    for rule in rules():
        match = re.fullmatch(r"job:persona_slo_errors:ratio_rate(\w+)", rule.get("record", ""))
        if match is None:
            continue
        window = match.group(1)
        windows.setdefault(rule["labels"]["slo"], set()).add(window)
        assert set(re.findall(r"\[(\w+)\]", rule["expr"])) == {window}, rule["expr"]
    assert windows == {s: SLO_WINDOWS for s in ("availability", "latency_5ms", "latency_1ms")}


def test_the_slo_targets_are_in_one_place_and_documented() -> None:
    objectives = {}
    for rule in rules():
        if rule.get("record") == "slo:persona_objective:ratio":
            value = re.fullmatch(r"vector\(([\d.]+)\)", rule["expr"])
            assert value is not None, rule["expr"]
            objectives[rule["labels"]["slo"]] = float(value.group(1))
    assert objectives == {"availability": 0.999, "latency_5ms": 0.99, "latency_1ms": 0.90}
    for rule in alerts().values():
        if "slo" in rule["labels"]:
            assert "slo:persona_objective:ratio" in rule["expr"]
            assert not re.search(r"0\.9\d*", rule["expr"]), "a target written into an alert"
    docs = OPERATIONS.read_text()
    for slo, target in objectives.items():
        row = re.search(rf"^\| `{slo}` \|.*$", docs, re.M)
        assert row is not None, f"docs/operations.md lists no `{slo}` SLO"
        assert f"{target * 100:g} %" in row.group(0), row.group(0)

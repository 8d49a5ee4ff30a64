"""The Grafana dashboard (deploy/grafana): the committed JSON is the builder's output, every
query selects the dashboard's job and instance, and a real Prometheus scraping the service
(two workers) under traffic answers every panel's query with data."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
import redis
from prometheus_client import CollectorRegistry

from service.events.log import LogReader
from service.local_redis import free_port
from service.metrics import LATENCY_BUCKETS, STAGES, Metrics
from service.settings import REPO_DIR
from service.store.address import redis_client_for
from tests.conftest import SERVER, process_env
from tests.helpers import run_persona, tiny_bundle
from tests.served import Served, children, cmdline, served

GRAFANA = REPO_DIR / "deploy" / "grafana"
PROMETHEUS = "/usr/bin/prometheus"
SCRAPE_S = 1
# what Grafana puts in place of the variables, for a Prometheus scraping every second
VALUES = {
    "__rate_interval": "15s",
    "__interval": "1s",
    "__range": "1m",
    "job": "persona",
    "instance": ".*",
}
CONSENT = {"X-Persona-Consent": "personalization,analytics"}
GROUP = "dashboard-test"
SHADOW = "dashboard-shadow"
Series = dict[str, Any]


def builder() -> ModuleType:
    """deploy/grafana/build.py as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("persona_dashboard_build", GRAFANA / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def committed() -> dict[str, Any]:
    """The dashboard file as Grafana imports it."""
    doc: dict[str, Any] = orjson.loads((GRAFANA / "persona.json").read_bytes())
    return doc


def targets(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every query of every panel, with its panel's title."""
    return [(p["title"], t) for p in doc["panels"] for t in p.get("targets", [])]


def substitute(expr: str) -> str:
    """The query as Grafana sends it (``$1`` of label_replace is not a variable)."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in VALUES, f"unknown variable ${name} in {expr}"
        return VALUES[name]

    return re.sub(r"\$\{(\w+)\}|\$([A-Za-z_]\w*)", value, expr)


def variable_selector(variable: dict[str, Any]) -> str:
    """The series a label-values variable reads its values from."""
    q = variable["query"]
    filters = ",".join(f'{f["label"]}{f["op"]}"{f["value"]}"' for f in q["labelFilters"])
    return f"{q['metric']}{{{filters}}}"


def test_the_committed_dashboard_is_the_builders_output() -> None:
    build = builder()
    assert (GRAFANA / "persona.json").read_text() == build.render(), (
        "run: .venv/bin/python deploy/grafana/build.py"
    )
    assert build.main(["--check"]) == 0
    assert tuple(build.STAGES) == STAGES


def test_a_stale_dashboard_file_is_reported(tmp_path: Path) -> None:
    build = builder()
    stale = tmp_path / "persona.json"
    stale.write_text(build.render().replace("Fallbacks by reason", "Fallbacks"))
    assert build.main(["--check", "--out", str(stale)]) == 1
    assert build.main(["--out", str(stale)]) == 0
    assert build.main(["--check", "--out", str(stale)]) == 0


def test_every_query_is_scoped_by_the_variables_and_names_exported_metrics() -> None:
    doc = committed()
    assert doc["schemaVersion"] >= 39 and doc["uid"]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        variable = variables[name]
        assert variable["type"] == "query" and variable["datasource"]["uid"] == "${datasource}"
        assert variable["includeAll"] and variable["allValue"] == ".*"
        # the editor's fields and the query text (older Grafanas read it) say the same
        query = f"label_values({variable_selector(variable)}, {name})"
        assert variable["query"]["query"] == variable["definition"] == query
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in doc["panels"]:  # on the 24-column grid, no panel covers another
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not mine & cells, panel["title"]
        cells |= mine
    exported = {
        m.name
        for m in Metrics(CollectorRegistry()).registry.collect()  # a fresh registry's families
    }
    families = set()
    for title, target in targets(doc):
        assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        names = re.findall(r"\b((?:persona|process|python)_\w+)\{([^}]*)\}", target["expr"])
        assert names, (title, target["expr"])
        for name, matchers in names:
            assert matchers.startswith('job=~"$job",instance=~"$instance"'), (title, name)
            family = re.sub(r"_(bucket|total)$", "", name)
            families.add(family)
            if name.startswith("persona_"):
                assert family in exported, f"{title}: {name} is not a metric of the service"
    # every family the SRE kit reads has its panel
    assert families >= {
        "persona_http_responses",
        "persona_http_request_duration_seconds",
        "persona_decide_stage_duration_seconds",
        "persona_decisions",
        "persona_fallbacks",
        "persona_overload_shed",
        "persona_redis_errors",
        "persona_redis_breaker_state",
        "persona_redis_memory_used_bytes",
        "persona_redis_memory_max_bytes",
        "persona_events",
        "persona_event_ingest_duration_seconds",
        "persona_event_log_entries",
        "persona_event_log_consumer_lag",
        "persona_event_log_consumer_pending",
        "persona_archive_entries",
        "persona_archive_last_success_timestamp_seconds",
        "persona_event_log_trimmed_entries",
        "persona_model_info",
        "persona_catalog_info",
        "persona_model_loaded",
        "persona_config_last_sync_timestamp_seconds",
        "persona_shadow_decisions",
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "python_gc_collections",
        "persona_event_loop_lag_seconds",
        "persona_worker_restarts",
    }
    heatmaps = [p["title"] for p in doc["panels"] if p["type"] == "heatmap"]
    assert heatmaps == ["Decide latency heatmap"] + [f"Stage {s} heatmap" for s in STAGES]


# ---------------------------------------------------------------------------------------------
# a real Prometheus scraping the service under traffic


@contextlib.contextmanager
def prometheus(folder: Path, target_port: int) -> Iterator[str]:
    """Debian's Prometheus scraping ``127.0.0.1:target_port`` every second; its base URL."""
    assert Path(PROMETHEUS).exists(), "install Debian's prometheus (apt-get install prometheus)"
    folder.mkdir()
    config = folder / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_S}s\n  scrape_timeout: {SCRAPE_S}s\n"
        "scrape_configs:\n  - job_name: persona\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    )
    port = free_port()
    with (folder / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (folder / "prometheus.log").read_text()[-2000:]
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{base}/-/ready", timeout=1) as r,
            ):
                if r.status == 200:
                    break
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def api(base: str, path: str, **params: str) -> tuple[int, dict[str, Any]]:
    """A Prometheus API call: its status and body (400 for a query that does not parse)."""
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def value(series: Series) -> float:
    """The instant value of one series."""
    return float(series["value"][1])


class Traffic:
    """Browsers and a site's server calling the service from threads until stopped."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.stop = threading.Event()
        self.statuses: dict[int, int] = {}
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._browsers, daemon=True),
            threading.Thread(target=self._server, daemon=True),
            threading.Thread(target=self._broken, daemon=True),
        ]

    def call(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        """POST ``body``; the status (0: no answer) and the visitor cookie it set."""
        req = urllib.request.Request(f"{self.base}{path}", data=body, method="POST")
        for k, v in {"Content-Type": "application/json", **headers}.items():
            req.add_header(k, v)
        status, cookie = 0, None
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                status = r.status
                r.read()
                for header in r.headers.get_all("Set-Cookie") or []:
                    if header.startswith("persona_vid="):
                        cookie = header.split(";", 1)[0]
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            pass  # a worker killed mid-request
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        return status, cookie

    def _browsers(self) -> None:
        """New and returning browsers: decide for two slots, then report the page view."""
        i = 0
        while not self.stop.is_set():
            cookie: str | None = None
            for _ in range(10):  # one browser's visit: its first call mints the cookie
                headers = {**CONSENT, **({"Cookie": cookie} if cookie else {})}
                body = orjson.dumps({"placements": ["home-hero", "sidebar-offer"]})
                cookie = self.call("/v1/decide", body, headers)[1] or cookie
                event = {
                    "type": "view",
                    "event_id": f"browser-view-{i:08d}",
                    "category": "running",
                    "page_type": "category",
                }
                self.call("/v1/events", orjson.dumps({"events": [event]}), headers)
                i += 1
                self.stop.wait(0.01)

    def _server(self) -> None:
        """The site's server: decisions for known visitors (one slot the catalog lacks),
        event batches (some replayed, some with an invalid event)."""
        headers = {**CONSENT, **SERVER}
        i = 0
        while not self.stop.is_set():
            visitor = f"dashboard-visitor-{i // 2 % 16:08d}"
            body = {"placements": ["home-hero", "no-such-slot"], "visitor_id": visitor}
            self.call("/v1/decide", orjson.dumps(body), headers)
            events = [
                {
                    "type": "view",
                    "event_id": f"server-view-{i // 2:08d}",  # every batch sent twice
                    "visitor_id": visitor,
                    "category": "yoga",
                    "page_type": "product",
                },
                {"type": "teleport", "event_id": f"server-bad-{i:08d}", "visitor_id": visitor},
            ]
            self.call("/v1/events", orjson.dumps({"events": events}), headers)
            i += 1
            self.stop.wait(0.01)

    def _broken(self) -> None:
        """A client sending bodies that are not JSON (400)."""
        while not self.stop.is_set():
            self.call("/v1/decide", b"{not json", CONSENT)
            self.stop.wait(0.1)

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def workers_of_service() -> list[int]:
    """The worker processes of the service this test started."""
    (service,) = [c for c in children(os.getpid()) if "-m service" in cmdline(c)]
    return [c for c in children(service) if "spawn_main" in cmdline(c)]


def start_shadow(s: Served, tmp_path: Path) -> None:
    """Register a small model and have every process score decisions with it in shadow."""
    done = run_persona(
        ["model", "register", "--dir", str(tiny_bundle(tmp_path, SHADOW))],
        {"PERSONA_REDIS_URL": s.redis_url},
    )
    assert done.returncode == 0, done.stderr
    req = urllib.request.Request(
        f"http://127.0.0.1:{s.port}/v1/admin/models/{SHADOW}/shadow",
        method="POST",
        headers={"Authorization": f"Bearer {s.token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def hold_log_entries(redis_url: str) -> int:
    """A consumer group that reads some of the log and acknowledges nothing (pending), and
    falls behind the entries appended after (lag); how many it holds."""

    async def run() -> int:
        client = redis_client_for(redis_url, timeout_s=10)
        reader = LogReader(client, GROUP, "test")
        await reader.ensure_groups()
        held = len(await reader.read(count=5))
        await client.aclose()
        return held

    return asyncio.run(run())


def positive(series: list[Series], **labels: str) -> bool:
    """Some series with these labels has a value above 0."""
    return any(
        value(s) > 0 and all(s["metric"].get(k) == v for k, v in labels.items()) for s in series
    )


# what the workload must show in particular panels (title, refId) -> check of the series
EXPECTED: dict[tuple[str, str], Callable[[list[Series]], bool]] = {
    ("Request rate by endpoint", "A"): lambda s: (
        positive(s, endpoint="/v1/decide") and positive(s, endpoint="/v1/events")
    ),
    # the broken client's 400s among the decide calls
    ("Error share by endpoint", "A"): lambda s: (
        all(0 <= value(x) <= 1 for x in s) and positive(s, endpoint="/v1/decide")
    ),
    ("Decide stages p50", "A"): lambda s: {x["metric"]["stage"] for x in s} == set(STAGES),
    # every bucket of the histogram, +Inf included
    ("Decide latency heatmap", "A"): lambda s: len(s) == len(LATENCY_BUCKETS) + 1,
    ("Decisions by placement and policy", "A"): lambda s: (
        positive(s, placement="home-hero", policy="model")
        and positive(s, placement="unknown", policy="fallback")
    ),
    ("Fallbacks by reason", "A"): lambda s: positive(s, reason="unknown_placement"),
    # Redis paused while known visitors' profiles were read
    ("Redis errors by kind", "A"): lambda s: positive(s, kind="redis_timeout"),
    ("Circuit breaker", "A"): lambda s: len(s) == 1 and value(s[0]) in (0, 1, 2),
    ("Redis memory", "A"): lambda s: positive(s),
    ("Event log entries", "A"): lambda s: positive(s),
    ("Events by type and status", "A"): lambda s: (
        positive(s, type="view", status="accepted")
        and positive(s, type="view", status="duplicate")
        and positive(s, status="rejected")
    ),
    ("Consumer pending by group", "A"): lambda s: positive(s, group=GROUP),
    ("Consumer lag by group", "A"): lambda s: positive(s, group=GROUP),
    # one row per worker, the version renamed for the merged table
    ("Model and catalog per process", "A"): lambda s: (
        len({x["metric"].get("pid") for x in s}) >= 2
        and all(x["metric"].get("model") and x["metric"].get("pid") for x in s)
    ),
    ("Model and catalog per process", "B"): lambda s: (
        len({x["metric"].get("pid") for x in s}) >= 2 and all(x["metric"].get("catalog") for x in s)
    ),
    ("Model loaded per process", "A"): lambda s: len(s) >= 2 and all(value(x) == 1 for x in s),
    ("Shadow agreement", "A"): lambda s: len(s) == 1 and 0 <= value(s[0]) <= 1,
    ("Shadow agreement", "B"): lambda s: positive(s),
    ("CPU per process", "A"): lambda s: len({x["metric"].get("pid") for x in s}) >= 2,
    ("Resident memory per process", "A"): lambda s: len({x["metric"].get("pid") for x in s}) >= 2,
    ("Since the last config sync", "A"): lambda s: all(0 <= value(x) < 60 for x in s),
    ("Archived entries", "A"): lambda s: positive(s),
    ("Since the last archive pass", "A"): lambda s: all(0 <= value(x) < 60 for x in s),
    ("Worker restarts", "A"): lambda s: positive(s, reason="crashed"),
}


@pytest.mark.slow
def test_a_real_prometheus_answers_every_panel_with_data(tmp_path: Path) -> None:
    doc = committed()
    queries = [(title, t["refId"], substitute(t["expr"])) for title, t in targets(doc)]
    assert set(EXPECTED) <= {(title, ref) for title, ref, _ in queries}
    env = {
        **process_env(tmp_path),
        "PERSONA_LOG_METRICS_INTERVAL_S": "1",
        "PERSONA_ARCHIVE_URL": str(tmp_path / "archive"),  # the archiver runs in the service
        "PERSONA_RATE_DECIDE_VISITOR_PER_S": "0",
        "PERSONA_RATE_EVENTS_VISITOR_PER_S": "0",
    }
    with (
        prometheus(tmp_path / "prometheus", int(env["PERSONA_PORT"])) as prom,
        served(env, tmp_path, ["models"], workers=2) as s,
    ):
        start_shadow(s, tmp_path)
        paused = redis.Redis.from_url(s.redis_url)
        with Traffic(s.port) as traffic:
            time.sleep(3)
            assert hold_log_entries(s.redis_url) > 0
            time.sleep(1)
            os.kill(workers_of_service()[0], 9)  # the supervisor starts it again
            for _ in range(2):
                time.sleep(3)
                paused.client_pause(700)  # reads time out, event batches get 503
            time.sleep(5)
        paused.close()
        ended = time.time()
        assert traffic.statuses.get(200, 0) > 500, traffic.statuses
        # two scrapes after the traffic, so every rate window holds its end
        deadline = time.monotonic() + 15
        while True:
            status, body = api(prom, "/api/v1/query", query='timestamp(up{job="persona"})')
            result = body["data"]["result"] if status == 200 else []
            if result and value(result[0]) > ended + SCRAPE_S:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        status, body = api(prom, "/api/v1/query", query='up{job="persona"}')
        assert [value(x) for x in body["data"]["result"]] == [1.0]
        at = time.time()
        problems = []
        for variable in doc["templating"]["list"][1:]:
            # label_values(selector, label), as Grafana asks Prometheus for it
            match = substitute(variable_selector(variable))
            label = variable["query"]["label"]
            status, body = api(prom, f"/api/v1/label/{label}/values", **{"match[]": match})
            wanted = {"job": "persona", "instance": f"127.0.0.1:{s.port}"}[variable["name"]]
            if status != 200 or body["data"] != [wanted]:
                problems.append(f"variable {variable['name']}: {status} {body}")
        for title, ref, expr in queries:
            status, body = api(prom, "/api/v1/query", query=expr, time=f"{at:.3f}")
            if status != 200:
                problems.append(f"{title} [{ref}]: HTTP {status} {body.get('error')}: {expr}")
                continue
            status, ranged = api(
                prom,
                "/api/v1/query_range",
                query=expr,
                start=f"{at - 30:.3f}",
                end=f"{at:.3f}",
                step="1",
            )
            if status != 200:
                problems.append(f"{title} [{ref}]: range HTTP {status} {ranged.get('error')}")
                continue
            series = body["data"]["result"]
            if not series:
                problems.append(f"{title} [{ref}]: no data: {expr}")
            elif not any(math.isfinite(value(x)) for x in series):
                problems.append(f"{title} [{ref}]: only NaN: {expr}")
            elif (check := EXPECTED.get((title, ref))) and not check(series):
                problems.append(
                    f"{title} [{ref}]: unexpected {[(x['metric'], value(x)) for x in series]}"
                )
    assert not problems, "\n".join(problems)

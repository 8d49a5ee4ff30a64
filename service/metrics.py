"""Every Prometheus metric of the service, defined in one place.

Names carry the ``persona_`` prefix and their unit; latency buckets are fine
enough below a millisecond to read p50/p99 of a sub-millisecond service.
Label sets are small and bounded (never a visitor id; placement names come
from the catalog, anything else is ``unknown``). Each app gets its own
registry so tests never share state.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from service.process_metrics import ProcessMetrics
from service.tally import CounterTally, HistogramTally, Tallies

LATENCY_BUCKETS = (
    0.0001,
    0.00015,
    0.0002,
    0.00025,
    0.0003,
    0.0004,
    0.0005,
    0.0006,
    0.00075,
    0.001,
    0.00125,
    0.0015,
    0.002,
    0.0025,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
STAGE_BUCKETS = (
    0.000005,
    0.00001,
    0.00002,
    0.00003,
    0.00005,
    0.000075,
    0.0001,
    0.00015,
    0.0002,
    0.0003,
    0.0005,
    0.00075,
    0.001,
    0.002,
    0.003,
    0.005,
    0.01,
    0.05,
)
LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STAGES = ("identify", "redis", "features", "score", "serialize")
FALLBACK_REASONS = (
    "draft",
    "paused",
    "redis_timeout",
    "redis_unavailable",
    "no_model",
    "score_error",
    "unknown_placement",
    "no_catalog",
    "internal_error",
    "deadline",
    "overloaded",
)
POLICIES = ("model", "explore", "holdout", "fallback")
COOKIE_OUTCOMES = (
    "valid",
    "refreshed",
    "minted",
    "rejected",
    "explicit",
    "no_consent",
    "withdrawn",
)


class Metrics:
    """The service's metrics, bound to one registry."""

    def __init__(self, registry: CollectorRegistry, shared_dir: Path | None = None) -> None:
        """``shared_dir``: the folder where several workers' metrics meet (prometheus-client's
        multiprocess mode, which the CLI turns on for them), or ``None`` for one process."""
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series double the output for no use here
        self.registry = registry
        self.shared_dir = shared_dir
        r = registry
        self.request_seconds = Histogram(
            "persona_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint, measured in the service.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.responses = Counter(
            "persona_http_responses_total",
            "HTTP responses by endpoint and status.",
            ["endpoint", "status"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "persona_decide_stage_duration_seconds",
            "Time spent in each stage of a decide call.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "persona_decisions_total",
            "Decisions by placement and policy.",
            ["placement", "policy"],
            registry=r,
        )
        self.fallbacks = Counter(
            "persona_fallbacks_total",
            "Decisions answered with the default, by reason.",
            ["reason"],
            registry=r,
        )
        self.redis_errors = Counter(
            "persona_redis_errors_total",
            "Failed Redis reads on the decision path, by kind.",
            ["kind"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "persona_redis_breaker_state",
            "Circuit breaker on the decision path: 0 closed, 1 open, 2 half-open.",
            registry=r,
            multiprocess_mode="max",
        )
        self.cookies = Counter(
            "persona_visitor_cookies_total",
            "Visitor identification outcomes (valid, refreshed, minted, rejected, explicit).",
            ["outcome"],
            registry=r,
        )
        self.profile_decode_errors = Counter(
            "persona_profile_decode_errors_total",
            "Stored profiles that could not be read (scored as unknown visitors).",
            registry=r,
        )
        self.model_info = Gauge(
            "persona_model_info",
            "The loaded model (value 1), by version and predictor.",
            ["version", "predictor", "schema_hash"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.model_loaded = Gauge(
            "persona_model_loaded",
            "1 when a model is loaded, 0 when decisions fall back.",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.catalog_info = Gauge(
            "persona_catalog_info",
            "The loaded catalog (value 1), by version.",
            ["version"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.events = Counter(
            "persona_events_total",
            "Events received, by type and outcome (accepted, duplicate, rejected, ignored).",
            ["type", "status"],
            registry=r,
        )
        self.events_unavailable = Counter(
            "persona_event_batches_unavailable_total",
            "Event batches answered 503 because Redis could not store them.",
            registry=r,
        )
        self.merges = Counter(
            "persona_identity_merges_total",
            "identify events: anonymous profiles merged into customer profiles, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.decisions_logged = Counter(
            "persona_decisions_logged_total",
            "Decisions appended to the event log for training, by outcome (ok, failed).",
            ["outcome"],
            registry=r,
        )
        self.log_entries = Gauge(
            "persona_event_log_entries",
            "Entries in the event log (all 64 partitions).",
            registry=r,
            multiprocess_mode="max",
        )
        self.log_lag = Gauge(
            "persona_event_log_consumer_lag",
            "Log entries not yet delivered to a consumer group.",
            ["group"],
            registry=r,
            multiprocess_mode="max",
        )
        self.log_pending = Gauge(
            "persona_event_log_consumer_pending",
            "Log entries delivered to a consumer group but not acknowledged.",
            ["group"],
            registry=r,
            multiprocess_mode="max",
        )
        self.ingest_seconds = Histogram(
            "persona_event_ingest_duration_seconds",
            "Time to validate and store an event batch (until the acknowledgement).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rate_limited = Counter(
            "persona_rate_limited_total",
            "Requests refused by a rate limit (429), or with a wrong API key (401), by "
            "endpoint and scope (client, visitor, auth_failures, bad_api_key).",
            ["endpoint", "scope"],
            registry=r,
        )
        self.admin_auth_failures = Counter(
            "persona_admin_auth_failures_total",
            "Admin API calls with a missing, unknown or revoked token.",
            registry=r,
        )
        self.withdrawals = Counter(
            "persona_consent_withdrawals_total",
            "Consent withdrawals carried out (profile deleted, erasure queued), by outcome.",
            ["outcome"],
            registry=r,
        )
        self.config_synced = Gauge(
            "persona_config_last_sync_timestamp_seconds",
            "When this process last confirmed it serves the published configuration "
            "(the oldest among live processes).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.shadow_decisions = Counter(
            "persona_shadow_decisions_total",
            "Decisions also scored by the shadow model, by whether its top variant is the "
            "one served (agree, disagree).",
            ["agreement"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "persona_event_loop_lag_seconds",
            "How late the event loop ran a timer it was asked to run (sampled continuously).",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.shed = Counter(
            "persona_overload_shed_total",
            "Requests answered at once because the event loop lagged past its budget "
            "(decide: the defaults; events: 503), by endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.worker_restarts = Counter(
            "persona_worker_restarts_total",
            "Worker processes the supervisor started again, by reason (crashed, rolling).",
            ["reason"],
            registry=r,
        )
        self.archive_entries = Counter(
            "persona_archive_entries_total",
            "Event-log entries written to the archive.",
            registry=r,
        )
        self.archive_files = Counter(
            "persona_archive_files_total",
            "Parquet files written to the archive.",
            registry=r,
        )
        self.archive_errors = Counter(
            "persona_archive_errors_total",
            "Archive passes that failed (Redis or the archive store), by stage.",
            ["stage"],
            registry=r,
        )
        self.archive_last_success = Gauge(
            "persona_archive_last_success_timestamp_seconds",
            "When the archiver last wrote and acknowledged a batch (or found nothing to do).",
            registry=r,
            multiprocess_mode="max",
        )
        self.log_trimmed = Counter(
            "persona_event_log_trimmed_entries_total",
            "Entries removed from the log in Redis, by reason (window: archived and older "
            "than the window; memory_limit: forced by the hard memory limit, maybe unarchived).",
            ["reason"],
            registry=r,
        )
        self.redis_memory_used = Gauge(
            "persona_redis_memory_used_bytes",
            "Memory the private Redis uses (INFO memory used_memory).",
            registry=r,
            multiprocess_mode="max",
        )
        self.redis_memory_max = Gauge(
            "persona_redis_memory_max_bytes",
            "The private Redis' maxmemory (0: unlimited).",
            registry=r,
            multiprocess_mode="max",
        )
        for kind in ("redis_error", "redis_timeout", "redis_unavailable"):
            self.redis_errors.labels(kind)  # at 0 from the start: rate() sees the first error
        for reason in ("crashed", "rolling"):
            self.worker_restarts.labels(reason)
        for stage in ("open", "read", "write", "ack"):
            self.archive_errors.labels(stage)
        for reason in ("window", "memory_limit"):
            self.log_trimmed.labels(reason)
        self.process = ProcessMetrics(registry, shared=shared_dir is not None)
        # the per-request series are tallied (service/tally.py) and flushed in batches
        self.tallies = t = Tallies()
        self.stage = {s: t.histogram(self.stage_seconds.labels(s)) for s in STAGES}
        self.fallback = {r_: t.counter(self.fallbacks.labels(r_)) for r_ in FALLBACK_REASONS}
        self.lag = t.histogram(self.loop_lag)
        self.shadow_agreement = {
            a: t.counter(self.shadow_decisions.labels(a)) for a in ("agree", "disagree")
        }
        self.shed_count = {e: t.counter(self.shed.labels(e)) for e in ("decide", "events")}
        self._decision_children: dict[tuple[str, str], CounterTally] = {}
        self._request_children: dict[tuple[str, int], tuple[HistogramTally, CounterTally]] = {}
        self.cookie_outcome = {
            o: t.counter(self.cookies.labels(o))
            for o in (
                "valid",
                "refreshed",
                "minted",
                "rejected",
                "explicit",
                "no_consent",
                "withdrawn",
            )
        }

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Record one HTTP request (children cached: ``.labels`` costs µs per call)."""
        key = (endpoint, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.tallies.histogram(self.request_seconds.labels(endpoint)),
                self.tallies.counter(self.responses.labels(endpoint, str(status))),
            )
            self._request_children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def decision(self, placement: str, policy: str) -> CounterTally:
        """The tallied counter for one placement and policy."""
        key = (placement, policy)
        child = self._decision_children.get(key)
        if child is None:
            child = self.tallies.counter(self.decisions.labels(placement, policy))
            self._decision_children[key] = child
        return child

    def flush(self) -> None:
        """Push the tallied per-request series into their metrics; sample the process."""
        self.tallies.flush()
        self.process.sample()

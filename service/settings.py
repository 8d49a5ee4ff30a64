"""Typed, frozen, validated settings read from the environment in one place.

Every setting is declared once in ``SPECS``: its environment variable, its
command-line option, its default and its documentation. ``--help``, the README
table and :func:`load_settings` are all derived from that list, so they cannot
drift apart.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.store.address import parse_redis_url

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DEFAULT_MODEL_DIR = REPO_DIR / "models" / "default"
DEFAULT_CATALOG = PACKAGE_DIR / "data" / "demo_catalog.json"

_ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$")


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The service's configuration. Build it with :func:`load_settings`."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    redis_url: str | None = None
    data_dir: Path = Path(".persona")
    model_dir: Path = DEFAULT_MODEL_DIR
    catalog_path: Path = DEFAULT_CATALOG
    cache_dir: Path | None = None
    decide_deadline_ms: float = 5.0
    redis_timeout_ms: float = 3.0
    redis_connect_timeout_ms: float = 250.0
    breaker_failures: int = 5
    breaker_cooldown_ms: float = 100.0
    breaker_cooldown_max_ms: float = 5000.0
    cookie_name: str = "persona_vid"
    cookie_secrets: tuple[str, ...] = ()
    cookie_max_age_s: int = 396 * 86400
    cookie_secure: str = "auto"
    cookie_domain: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 64 * 1024
    max_placements: int = 10
    affinity_half_life_days: float = 14.0
    holdout_seed: str = "persona-holdout-v1"
    consent_default: str = "denied"
    customer_id_key: str | None = None
    site_secrets: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = ()
    forwarded_hops: int = 0
    rate_decide_client_per_s: float = 100.0
    rate_decide_visitor_per_s: float = 10.0
    rate_events_client_per_s: float = 100.0
    rate_events_visitor_per_s: float = 10.0
    rate_admin_failures_per_min: float = 10.0
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 10.0
    http_idle_timeout_s: float = 60.0
    events_timeout_ms: float = 500.0
    profile_ttl_days: int = 396
    log_maxlen: int = 1_000_000
    dedupe_window_s: int = 86400
    log_metrics_interval_s: float = 5.0
    config_poll_ms: float = 250.0
    log_decisions: bool = True
    uvloop: bool = True
    log_level: str = "INFO"
    log_format: str = "text"
    overload_lag_ms: float = 20.0
    shutdown_timeout_s: float = 10.0
    redis_server_bin: str = "redis-server"
    redis_appendfsync: str = "always"
    # the event log: a window in Redis, the rest in the archive
    archive_url: str | None = None
    archive_in_service: bool = True
    archive_interval_s: float = 10.0
    log_window_s: int | None = None
    log_memory_limit_mb: int | None = None
    redis_maxmemory_mb: int | None = None

    @property
    def effective_cache_dir(self) -> Path:
        """Where compiled models are cached (``cache_dir`` or ``data_dir/cache``)."""
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "cache"

    # Every duration in seconds, converted here once: the rest of the code uses these.

    @property
    def decide_deadline_s(self) -> float:
        """PERSONA_DECIDE_DEADLINE_MS in seconds."""
        return self.decide_deadline_ms / 1000

    @property
    def redis_timeout_s(self) -> float:
        """PERSONA_REDIS_TIMEOUT_MS in seconds."""
        return self.redis_timeout_ms / 1000

    @property
    def redis_connect_timeout_s(self) -> float:
        """PERSONA_REDIS_CONNECT_TIMEOUT_MS in seconds."""
        return self.redis_connect_timeout_ms / 1000

    @property
    def breaker_cooldown_s(self) -> float:
        """PERSONA_BREAKER_COOLDOWN_MS in seconds."""
        return self.breaker_cooldown_ms / 1000

    @property
    def breaker_cooldown_max_s(self) -> float:
        """PERSONA_BREAKER_COOLDOWN_MAX_MS in seconds."""
        return self.breaker_cooldown_max_ms / 1000

    @property
    def events_timeout_s(self) -> float:
        """PERSONA_EVENTS_TIMEOUT_MS in seconds."""
        return self.events_timeout_ms / 1000

    @property
    def config_poll_s(self) -> float:
        """PERSONA_CONFIG_POLL_MS in seconds."""
        return self.config_poll_ms / 1000

    @property
    def affinity_half_life_s(self) -> float:
        """PERSONA_AFFINITY_HALF_LIFE_DAYS in seconds."""
        return self.affinity_half_life_days * 86400.0

    @property
    def profile_ttl_s(self) -> int:
        """PERSONA_PROFILE_TTL_DAYS in seconds."""
        return self.profile_ttl_days * 86400


@dataclass(frozen=True, slots=True)
class Spec:
    """How one setting is read: variable, option, parser and help text."""

    field: str
    env: str
    parse: Callable[[str], Any]
    help: str

    @property
    def option(self) -> str:
        """The command-line option that overrides the variable."""
        return "--" + self.field.replace("_", "-")

    @property
    def default(self) -> Any:
        """The default value, taken from :class:`Settings`."""
        for f in dataclasses.fields(Settings):
            if f.name == self.field:
                return f.default
        raise KeyError(self.field)


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _secrets(raw: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in raw.split(",") if s.strip())
    for item in items:
        if len(item) < 32:
            raise ValueError("each secret must be at least 32 characters")
    return items


def _optional_secret(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if len(value) < 32:
        raise ValueError("must be at least 32 characters")
    return value


def _origins(raw: str) -> tuple[str, ...]:
    items = tuple(s.strip().rstrip("/") for s in raw.split(",") if s.strip())
    for item in items:
        if item == "*" or not _ORIGIN_RE.match(item):
            raise ValueError(f"{item!r} is not an origin like https://www.example.com")
    return items


def _redis_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    parse_redis_url(value)  # raises ValueError saying what is wrong
    return value


def _optional(raw: str) -> str | None:
    return raw.strip() or None


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _optional_path(raw: str) -> Path | None:
    return Path(raw).expanduser() if raw.strip() else None


def _optional_int_range(lo: int, hi: int) -> Callable[[str], int | None]:
    within = _int_range(lo, hi)

    def parse(raw: str) -> int | None:
        return within(raw) if raw.strip() else None

    return parse


ARCHIVE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


def _archive_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    scheme = value.split("://", 1)[0].lower() if "://" in value else "file"
    if scheme not in ARCHIVE_SCHEMES:
        raise ValueError(f"must be a path or a {', '.join(ARCHIVE_SCHEMES)} URI")
    return value


SPECS: tuple[Spec, ...] = (
    Spec("host", "PERSONA_HOST", str, "Address to listen on."),
    Spec("port", "PERSONA_PORT", _int_range(1, 65535), "TCP port to listen on."),
    Spec(
        "workers",
        "PERSONA_WORKERS",
        _int_range(1, 64),
        "Worker processes sharing the port (SO_REUSEPORT); one per core is right.",
    ),
    Spec(
        "redis_url",
        "PERSONA_REDIS_URL",
        _redis_url,
        "Redis to use, e.g. redis://10.0.0.5:6379/0. Empty: start a private "
        "redis-server (AOF on) with its data under PERSONA_DATA_DIR.",
    ),
    Spec("data_dir", "PERSONA_DATA_DIR", _path, "Local folder for the private Redis and caches."),
    Spec("model_dir", "PERSONA_MODEL_DIR", _path, "Model bundle folder (model.txt + manifest)."),
    Spec("catalog_path", "PERSONA_CATALOG", _path, "JSON file with the slots and variants."),
    Spec(
        "cache_dir",
        "PERSONA_CACHE_DIR",
        _optional_path,
        "Where compiled models are cached by hash (default: PERSONA_DATA_DIR/cache).",
    ),
    Spec(
        "decide_deadline_ms",
        "PERSONA_DECIDE_DEADLINE_MS",
        _float_range(0.5, 1000),
        "Budget of a decide call from the moment its body has arrived: the profile read gets "
        "what is left of it, and a slot that would end past it is not decided (its default "
        "is served, fallback 'deadline').",
    ),
    Spec(
        "redis_timeout_ms",
        "PERSONA_REDIS_TIMEOUT_MS",
        _float_range(0.1, 1000),
        "Timeout of the decision's one Redis read (capped by the deadline).",
    ),
    Spec(
        "redis_connect_timeout_ms",
        "PERSONA_REDIS_CONNECT_TIMEOUT_MS",
        _float_range(1, 10000),
        "Timeout for opening a Redis connection.",
    ),
    Spec(
        "breaker_failures",
        "PERSONA_BREAKER_FAILURES",
        _int_range(1, 1000),
        "Consecutive Redis failures that open the circuit breaker.",
    ),
    Spec(
        "breaker_cooldown_ms",
        "PERSONA_BREAKER_COOLDOWN_MS",
        _float_range(10, 600000),
        "How long an open breaker fails fast before it probes Redis again (the first time).",
    ),
    Spec(
        "breaker_cooldown_max_ms",
        "PERSONA_BREAKER_COOLDOWN_MAX_MS",
        _float_range(10, 600000),
        "Longest cool-down: each failed probe doubles it up to this (at least "
        "PERSONA_BREAKER_COOLDOWN_MS); a success resets it.",
    ),
    Spec("cookie_name", "PERSONA_COOKIE_NAME", str, "Name of the visitor cookie."),
    Spec(
        "cookie_secrets",
        "PERSONA_COOKIE_SECRETS",
        _secrets,
        "Comma-separated HMAC keys (>= 32 chars); the first signs, all verify. "
        "Empty: a key is generated once and kept in PERSONA_DATA_DIR/secrets.json.",
    ),
    Spec(
        "cookie_max_age_s",
        "PERSONA_COOKIE_MAX_AGE_S",
        _int_range(60, 2 * 366 * 86400),
        "Lifetime of the visitor cookie in seconds (default 396 days, about 13 months).",
    ),
    Spec(
        "cookie_secure",
        "PERSONA_COOKIE_SECURE",
        _choice("auto", "true", "false"),
        "Secure flag: 'auto' sets it when the request came over HTTPS.",
    ),
    Spec("cookie_domain", "PERSONA_COOKIE_DOMAIN", _optional, "Domain attribute of the cookie."),
    Spec(
        "cors_origins",
        "PERSONA_CORS_ORIGINS",
        _origins,
        "Comma-separated origins allowed to call the API from a browser (never '*').",
    ),
    Spec(
        "max_body_bytes",
        "PERSONA_MAX_BODY_BYTES",
        _int_range(1024, 16 * 1024 * 1024),
        "Largest request body accepted; larger ones get 413.",
    ),
    Spec(
        "max_placements",
        "PERSONA_MAX_PLACEMENTS",
        _int_range(1, 100),
        "Most placements one decide call may ask for.",
    ),
    Spec(
        "affinity_half_life_days",
        "PERSONA_AFFINITY_HALF_LIFE_DAYS",
        _float_range(0.01, 3650),
        "Half-life of category and tag affinities.",
    ),
    Spec("holdout_seed", "PERSONA_HOLDOUT_SEED", str, "Seed of the sticky holdout assignment."),
    Spec(
        "consent_default",
        "PERSONA_CONSENT_DEFAULT",
        _choice("denied", "granted"),
        "Consent assumed when a call carries no X-Persona-Consent header.",
    ),
    Spec(
        "customer_id_key",
        "PERSONA_CUSTOMER_ID_KEY",
        _optional_secret,
        "Key (>= 32 chars) that pseudonymizes customer ids; never stored in Redis. "
        "Empty: generated once into PERSONA_DATA_DIR/secrets.json.",
    ),
    Spec(
        "site_secrets",
        "PERSONA_SITE_SECRETS",
        _secrets,
        "Comma-separated secrets (>= 32 chars) shared with the site's server, which makes "
        "login tokens for its pages with the first; all verify (rotation). Empty: "
        "generated once into PERSONA_DATA_DIR/secrets.json.",
    ),
    Spec(
        "api_keys",
        "PERSONA_API_KEYS",
        _secrets,
        "Comma-separated keys (>= 32 chars) the site's server sends as 'Authorization: "
        "Bearer <key>'; only such calls may name visitors and customers. Empty: one is "
        "generated into PERSONA_DATA_DIR/secrets.json.",
    ),
    Spec(
        "forwarded_hops",
        "PERSONA_FORWARDED_HOPS",
        _int_range(0, 10),
        "Reverse proxies in front of Persona that append to X-Forwarded-For; the client "
        "address (for rate limits) is that many entries from the right. 0: the peer address.",
    ),
    Spec(
        "rate_decide_client_per_s",
        "PERSONA_RATE_DECIDE_CLIENT_PER_S",
        _float_range(0, 1e6),
        "Decide calls per second one client address may make (bursts of 2 s worth); "
        "calls with an API key are not counted here. 0: no limit.",
    ),
    Spec(
        "rate_decide_visitor_per_s",
        "PERSONA_RATE_DECIDE_VISITOR_PER_S",
        _float_range(0, 1e6),
        "Decide calls per second for one browser's visitor (bursts of 2 s worth). 0: no limit.",
    ),
    Spec(
        "rate_events_client_per_s",
        "PERSONA_RATE_EVENTS_CLIENT_PER_S",
        _float_range(0, 1e6),
        "Event batches per second one client address may send (bursts of 2 s worth); "
        "calls with an API key are not counted here. 0: no limit.",
    ),
    Spec(
        "rate_events_visitor_per_s",
        "PERSONA_RATE_EVENTS_VISITOR_PER_S",
        _float_range(0, 1e6),
        "Event batches per second for one browser's visitor (bursts of 2 s worth). 0: no limit.",
    ),
    Spec(
        "rate_admin_failures_per_min",
        "PERSONA_RATE_ADMIN_FAILURES_PER_MIN",
        _float_range(0, 1e6),
        "Failed admin authentications per minute one client address may make before its "
        "admin calls get 429. 0: no limit.",
    ),
    Spec(
        "http_header_timeout_s",
        "PERSONA_HTTP_HEADER_TIMEOUT_S",
        _float_range(0.1, 600),
        "A request's headers must arrive within this many seconds of its first byte, "
        "else the connection is closed.",
    ),
    Spec(
        "http_body_timeout_s",
        "PERSONA_HTTP_BODY_TIMEOUT_S",
        _float_range(0.1, 600),
        "A request's body must arrive within this many seconds, else 408.",
    ),
    Spec(
        "http_idle_timeout_s",
        "PERSONA_HTTP_IDLE_TIMEOUT_S",
        _float_range(0.1, 3600),
        "An idle keep-alive connection (and one that never sends a request) is closed "
        "after this many seconds.",
    ),
    Spec(
        "events_timeout_ms",
        "PERSONA_EVENTS_TIMEOUT_MS",
        _float_range(10, 60000),
        "How long an event batch may wait for Redis before the answer is 503.",
    ),
    Spec(
        "profile_ttl_days",
        "PERSONA_PROFILE_TTL_DAYS",
        _int_range(1, 3650),
        "Expiry of every per-person key, refreshed on activity (default about 13 months).",
    ),
    Spec(
        "log_maxlen",
        "PERSONA_LOG_MAXLEN",
        _int_range(1000, 10**9),
        "Last-resort cap on the entries of an event-log partition (64 partitions), applied "
        "as they are written; PERSONA_LOG_WINDOW_S and PERSONA_LOG_MEMORY_LIMIT_MB bind first.",
    ),
    Spec(
        "dedupe_window_s",
        "PERSONA_DEDUPE_WINDOW_S",
        _int_range(60, 30 * 86400),
        "How long a seen event_id is remembered to ignore a replay.",
    ),
    Spec(
        "log_decisions",
        "PERSONA_LOG_DECISIONS",
        _bool,
        "Append each decision of a consenting visitor to the event log (training reads it).",
    ),
    Spec(
        "config_poll_ms",
        "PERSONA_CONFIG_POLL_MS",
        _float_range(10, 10_000),
        "How often each process checks for a newly published configuration.",
    ),
    Spec(
        "log_metrics_interval_s",
        "PERSONA_LOG_METRICS_INTERVAL_S",
        _float_range(0.05, 3600),
        "How often the event log's length and consumer lag are sampled for /metrics.",
    ),
    Spec("uvloop", "PERSONA_UVLOOP", _bool, "Use uvloop when it is installed."),
    Spec(
        "redis_appendfsync",
        "PERSONA_REDIS_APPENDFSYNC",
        _choice("always", "everysec"),
        "appendfsync of the private Redis. always: every acknowledged event survives a crash "
        "of Redis; everysec: faster, but up to ~2 s of acknowledged events can be lost when "
        "Redis dies while the disk is slow.",
    ),
    Spec(
        "log_level",
        "PERSONA_LOG_LEVEL",
        _choice("debug", "info", "warning", "error"),
        "Log level: debug, info, warning or error.",
    ),
    Spec(
        "log_format",
        "PERSONA_LOG_FORMAT",
        _choice("text", "json"),
        "Log lines as text, or as one JSON object per line (with the request id).",
    ),
    Spec(
        "overload_lag_ms",
        "PERSONA_OVERLOAD_LAG_MS",
        _float_range(1, 10_000),
        "When the event loop runs later than this, decisions answer the defaults at once "
        '(fallback "overloaded") and event batches 503, until it catches up.',
    ),
    Spec(
        "shutdown_timeout_s",
        "PERSONA_SHUTDOWN_TIMEOUT_S",
        _float_range(0.1, 600),
        "On SIGTERM, how long requests in flight may take to finish before the process "
        "flushes its decision log and metrics and exits.",
    ),
    Spec(
        "redis_server_bin",
        "PERSONA_REDIS_SERVER_BIN",
        str,
        "redis-server binary used for the private Redis.",
    ),
    Spec(
        "archive_url",
        "PERSONA_ARCHIVE_URL",
        _archive_url,
        "Where the event log is archived as Parquet: a folder, or an object store URI "
        "(s3://bucket/prefix, gs://bucket/prefix). Unset: no archive, and Redis' window is "
        "all the log there is.",
    ),
    Spec(
        "archive_in_service",
        "PERSONA_ARCHIVE_IN_SERVICE",
        _bool,
        "With PERSONA_ARCHIVE_URL, each worker archives the log as a consumer of the "
        "archive group; false when `persona archive` runs as its own process.",
    ),
    Spec(
        "archive_interval_s",
        "PERSONA_ARCHIVE_INTERVAL_S",
        _float_range(0.1, 3600),
        "How often an archiver writes what was logged since its last file (at once again "
        "while there is a backlog).",
    ),
    Spec(
        "log_window_s",
        "PERSONA_LOG_WINDOW_S",
        _optional_int_range(1, 366 * 86400),
        "How long log entries stay in Redis; older ones are trimmed once archived. Unset: "
        "3600 with PERSONA_ARCHIVE_URL, 604800 (7 days) without.",
    ),
    Spec(
        "log_memory_limit_mb",
        "PERSONA_LOG_MEMORY_LIMIT_MB",
        _optional_int_range(0, 16 * 1024 * 1024),
        "Hard limit on the log's memory in Redis: past it the oldest entries are trimmed, "
        "archived or not (counted, logged). Unset: half of Redis' maxmemory; 0: none.",
    ),
    Spec(
        "redis_maxmemory_mb",
        "PERSONA_REDIS_MAXMEMORY_MB",
        _optional_int_range(16, 16 * 1024 * 1024),
        "maxmemory of the private Redis (policy noeviction: writes fail rather than "
        "profiles vanish). Unset: a quarter of the machine's memory.",
    ),
)


def load_settings(env: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> Settings:
    """Build settings from environment variables, then command-line overrides.

    Raises :class:`SettingsError` naming the variable (or option) at fault.
    """
    values: dict[str, Any] = {}
    for spec in SPECS:
        source = spec.env
        raw = env.get(spec.env)
        if overrides is not None and overrides.get(spec.field) is not None:
            raw = overrides[spec.field]
            source = spec.option
        if raw is None:
            continue
        try:
            values[spec.field] = spec.parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{source}={raw!r}: {exc}") from None
    settings = Settings(**values)
    if settings.log_level != settings.log_level.upper():
        settings = dataclasses.replace(settings, log_level=settings.log_level.upper())
    if settings.redis_timeout_ms > settings.decide_deadline_ms:
        raise SettingsError(
            "PERSONA_REDIS_TIMEOUT_MS must not exceed PERSONA_DECIDE_DEADLINE_MS "
            f"({settings.redis_timeout_ms} > {settings.decide_deadline_ms})"
        )
    return settings

"""The composition root: ``create_app(settings)`` builds the whole service.

Resources (Redis clients, catalog, model) are opened in ``cleanup_ctx``
generators and closed in reverse order; nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry

from service import sdk
from service.admin import models as model_registry
from service.admin import propagate
from service.admin import routes as admin_routes
from service.admin.auth import TOKENS
from service.admin.tokens import TokenStore
from service.catalog.loader import CatalogError, CatalogSource, FileCatalogSource
from service.decide.engine import DecisionEngine, EngineConfig
from service.decide.record import DecisionRecorder
from service.decide.snapshot import Live, LoadedModel
from service.events import monitor as log_monitor
from service.events import upkeep as log_upkeep
from service.events.ingest import Ingestor
from service.events.store import EventWriter, WriteConfig
from service.features.schema import schema_hash
from service.http import decide, demo, me, ops
from service.http import events as events_http
from service.http import sdk as sdk_http
from service.http.guard import GUARD, Guard, Rules
from service.http.middleware import edge
from service.http.server import quiet_malformed_requests
from service.http.shed_lane import LANE, ShedLane
from service.identity.cookies import CookieSigner
from service.identity.customer import CustomerKeys
from service.identity.trust import ApiKeys
from service.keys import (
    ADMIN_REDIS,
    CUSTOMER_KEYS,
    ENGINE,
    EVENT_WRITER,
    INGESTOR,
    LIVE,
    METRICS,
    OVERLOAD,
    REDIS,
    SETTINGS,
    SIGNER,
)
from service.metrics import Metrics
from service.overload import Overload
from service.ratelimit import Limiter, RateTable
from service.scoring.bundle import BundleError, load_bundle
from service.scoring.predictor import load_predictor
from service.settings import Settings
from service.store.address import RedisAddress, parse_redis_url, redis_py_client
from service.store.breaker import Breaker
from service.store.profiles import PipelinedFetcher, ProfileStore
from service.store.resp import PipelinedConnection
from service.tally import flush_every

log = logging.getLogger(__name__)
ADMIN_TIMEOUT_S = 5.0
METRICS_FLUSH_S = 1.0  # tallied per-request metrics reach the shared files at most this late


def redis_client(
    settings: Settings, address: RedisAddress, timeout_s: float | None = None
) -> aioredis.Redis:
    """redis-py client with explicit timeouts and no retries (no retry storms)."""
    return redis_py_client(
        address,
        timeout_s=timeout_s or max(settings.redis_timeout_s, 0.05),
        connect_timeout_s=settings.redis_connect_timeout_s,
    )


async def load_model(settings: Settings) -> LoadedModel:
    """Load and verify the bundle, then its fastest predictor (off the event loop)."""
    bundle = load_bundle(settings.model_dir)
    predictor = await asyncio.get_running_loop().run_in_executor(
        None, load_predictor, bundle, settings.effective_cache_dir
    )
    return LoadedModel(predictor=predictor, manifest=bundle.manifest)


def create_app(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    catalog_source: CatalogSource | None = None,
    clock: Callable[[], float] = time.time,
    rate_table: RateTable | None = None,
    metrics_dir: Path | None = None,
) -> web.Application:
    """Build the service. ``settings.redis_url`` and the secrets must be set.

    ``rate_table`` is the rate-limit table shared by the host's workers (a
    private one when absent); ``metrics_dir`` the folder where their metrics meet.
    """
    if settings.redis_url is None:
        raise ValueError("settings.redis_url must be set (the CLI starts a Redis if needed)")
    address = parse_redis_url(settings.redis_url)
    quiet_malformed_requests()
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[edge])
    app[SETTINGS] = settings
    app[sdk_http.SCRIPT] = sdk.Script.load()
    metrics = app[METRICS] = Metrics(
        registry if registry is not None else CollectorRegistry(), metrics_dir
    )
    app[SIGNER] = CookieSigner(settings.cookie_secrets, settings.cookie_max_age_s)
    if settings.customer_id_key is None or not settings.site_secrets:
        raise ValueError("settings.customer_id_key and settings.site_secrets must be set")
    app[CUSTOMER_KEYS] = CustomerKeys(settings.customer_id_key, settings.site_secrets)
    app[GUARD] = Guard(
        ApiKeys(settings.api_keys),
        Limiter(rate_table or RateTable.local(), time.monotonic),
        Rules.from_settings(settings),
        settings.forwarded_hops,
        metrics,
    )
    app[OVERLOAD] = Overload(settings.overload_lag_ms / 1000, metrics.lag)
    source = catalog_source or FileCatalogSource(settings.catalog_path)
    app[LIVE] = Live()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        metrics = app[METRICS]
        live = app[LIVE]
        client = redis_client(settings, address)
        app[REDIS] = client
        conn = PipelinedConnection(address, settings.redis_connect_timeout_s)
        breaker = Breaker(
            settings.breaker_failures,
            settings.breaker_cooldown_s,
            time.monotonic,
            settings.breaker_cooldown_max_s,
            min_span_s=settings.redis_timeout_s,
            on_change=metrics.breaker_state.set,
        )
        events_client = redis_client(settings, address, timeout_s=settings.events_timeout_s)
        events_conn = PipelinedConnection(address, settings.redis_connect_timeout_s)
        recorder = (
            DecisionRecorder(events_conn, metrics, settings.log_maxlen, settings.events_timeout_s)
            if settings.log_decisions
            else None
        )
        app[ENGINE] = DecisionEngine(
            EngineConfig(
                deadline_s=settings.decide_deadline_s,
                redis_timeout_s=settings.redis_timeout_s,
                half_life_s=settings.affinity_half_life_s,
                holdout_seed=settings.holdout_seed,
            ),
            ProfileStore(PipelinedFetcher(conn), breaker),
            metrics,
            live,
            recorder,
            clock=clock,
        )
        app[LANE] = ShedLane(
            app[OVERLOAD],
            app[ENGINE],
            metrics,
            app[GUARD].keys,
            app[CUSTOMER_KEYS],
            settings.max_placements,
            settings.cors_origins,
        )
        writer = app[EVENT_WRITER] = EventWriter(
            events_client,
            WriteConfig(
                half_life_s=settings.affinity_half_life_s,
                ttl_s=settings.profile_ttl_s,
                log_maxlen=settings.log_maxlen,
                dedupe_window_s=settings.dedupe_window_s,
                timeout_s=settings.events_timeout_s,
            ),
            events_conn,
        )
        app[INGESTOR] = Ingestor(writer, app[CUSTOMER_KEYS], metrics)
        try:
            catalog = await source.load()
            live.publish(catalog=catalog)
            metrics.catalog_info.labels(catalog.version).set(1)
        except CatalogError as exc:
            log.error("no catalog loaded, every placement falls back: %s", exc)
        try:
            model = await load_model(settings)
            live.publish(model=model)
            metrics.model_info.labels(
                model.manifest.version, model.predictor.kind, schema_hash()
            ).set(1)
            metrics.model_loaded.set(1)
        except BundleError as exc:
            metrics.model_loaded.set(0)
            log.error("no model loaded, decisions serve defaults: %s", exc)
        admin_client = redis_client(settings, address, timeout_s=ADMIN_TIMEOUT_S)
        app[ADMIN_REDIS] = admin_client
        app[TOKENS] = TokenStore(admin_client)
        stop = asyncio.Event()
        background = [
            asyncio.create_task(flush_every(metrics.tallies, METRICS_FLUSH_S, stop)),
            asyncio.create_task(app[OVERLOAD].run(stop)),
            asyncio.create_task(
                log_monitor.run(events_client, metrics, settings.log_metrics_interval_s, stop)
            ),
            asyncio.create_task(log_upkeep.run(admin_client, settings, metrics, stop)),
            asyncio.create_task(
                propagate.follow(admin_client, live, metrics, settings.config_poll_s, stop)
            ),
            asyncio.create_task(
                model_registry.follow(
                    admin_client,
                    live,
                    metrics,
                    settings.effective_cache_dir / "bundles",
                    settings.effective_cache_dir,
                    settings.config_poll_s,
                    stop,
                )
            ),
        ]
        yield
        stop.set()
        await asyncio.gather(*background)
        if recorder is not None:
            await recorder.drain()
        await conn.aclose()
        await client.aclose()
        await events_client.aclose()
        await events_conn.aclose()
        await admin_client.aclose()
        metrics.flush()

    app.cleanup_ctx.append(resources)
    app.router.add_post("/v1/decide", decide.post_decide)
    app.router.add_get("/v1/decide", decide.get_decide)
    app.router.add_post("/v1/events", events_http.post_events)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics)
    app.router.add_get("/openapi.json", ops.openapi)
    app.router.add_get("/v1/me", me.get_me)
    app.router.add_get("/admin", ops.admin)
    app.router.add_get("/static/{name}", ops.static)
    app.router.add_get(sdk.PATH, sdk_http.script)
    demo.add_routes(app)
    admin_routes.add_routes(app)
    return app

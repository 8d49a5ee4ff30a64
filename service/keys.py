"""Typed keys of everything the app holds (built by ``create_app``)."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from service.decide.engine import DecisionEngine
from service.decide.snapshot import Live
from service.events.ingest import Ingestor
from service.events.store import EventWriter
from service.identity.cookies import CookieSigner
from service.identity.customer import CustomerKeys
from service.metrics import Metrics
from service.overload import Overload
from service.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
SIGNER = web.AppKey("signer", CookieSigner)
ENGINE = web.AppKey("engine", DecisionEngine)
LIVE = web.AppKey("live", Live)
"""The live snapshot (catalog, model, shadow); only the followers publish a new one."""
REDIS = web.AppKey("redis", aioredis.Redis)
# admin work (tokens, configuration, registry, stats): generous timeouts, off the hot path
ADMIN_REDIS = web.AppKey("admin_redis", aioredis.Redis)
EVENT_WRITER = web.AppKey("event_writer", EventWriter)
CUSTOMER_KEYS = web.AppKey("customer_keys", CustomerKeys)
INGESTOR = web.AppKey("ingestor", Ingestor)
OVERLOAD = web.AppKey("overload", Overload)
"""The event loop's lag against the overload budget (service/overload.py)."""

"""The model registry: bundles stored in Redis, one active, every process follows.

Bundles live in Redis (manifest and ``model.txt``, about 1 MB for 250 trees)
rather than in a directory: every host sharing the Redis sees the same
registry without a shared file system, and activation is one key. Each process
materializes the active bundle under its cache directory, verifies it like any
bundle (schema, hash), serves it at once with LightGBM's own predictor, and
swaps in the compiled predictor when lleaves has built it, so a switch takes
about a second and never fails a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from service.decide.snapshot import Live, LoadedModel
from service.features.schema import schema_hash
from service.metrics import Metrics
from service.scoring.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    Bundle,
    BundleError,
    load_bundle,
)
from service.scoring.predictor import BoosterPredictor, load_predictor
from service.store.keyspace import (
    MODEL_ACTIVATIONS,
    MODEL_ACTIVE,
    MODEL_BUNDLES,
    MODEL_SHADOW,
    model_text_key,
)

log = logging.getLogger(__name__)


class ModelError(ValueError):
    """A registry operation cannot be done (unknown version, bad bundle, nothing to roll back)."""


class UnknownModel(ModelError):
    """No model of that version is registered."""


class ModelRegistry:
    """Register, list, activate and roll back model bundles."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def register(self, bundle: Bundle, by: str) -> None:
        """Store a verified bundle under its manifest's version."""
        version = bundle.manifest.version
        if await self.client.hexists(MODEL_BUNDLES, version):
            raise ModelError(f"a model {version!r} is registered already")
        record = {"manifest": bundle.manifest.to_json(), "registered": time.time(), "by": by}
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(model_text_key(version), bundle.model_file.read_bytes())
            pipe.hset(MODEL_BUNDLES, version, orjson.dumps(record))
            await pipe.execute()

    async def list(self) -> list[dict[str, Any]]:
        """Every registered model (manifest without the feature list), newest first."""
        raw: dict[Any, Any] = await self.client.hgetall(MODEL_BUNDLES)
        active = await self.active()
        out = []
        for value in raw.values():
            r = orjson.loads(value)
            m = r["manifest"]
            out.append(
                {
                    "version": m["version"],
                    "created_at": m["created_at"],
                    "registered": r["registered"],
                    "by": r["by"],
                    "schema_hash": m["schema_hash"],
                    "num_trees": m["num_trees"],
                    "metrics": m["metrics"],
                    "active": m["version"] == active,
                }
            )
        return sorted(out, key=lambda m: -float(m["registered"]))

    async def active(self) -> str | None:
        """The active version, or ``None`` (the service's bundled model serves)."""
        raw = await self.client.get(MODEL_ACTIVE)
        return None if raw is None else (raw.decode() if isinstance(raw, bytes) else str(raw))

    async def materialize(self, version: str, root: Path) -> Bundle:
        """Write ``version`` under ``root`` and load it as a verified bundle."""
        raw = await self.client.hget(MODEL_BUNDLES, version)
        text = await self.client.get(model_text_key(version))
        if raw is None or text is None:
            raise UnknownModel(f"no model {version!r} is registered")
        folder = root / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MODEL_FILE).write_bytes(text if isinstance(text, bytes) else text.encode())
        manifest = orjson.loads(raw)["manifest"]
        (folder / MANIFEST_FILE).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        try:
            return load_bundle(folder)
        except BundleError as exc:
            raise ModelError(str(exc)) from None

    async def activate(self, version: str, root: Path) -> Bundle:
        """Check ``version`` loads against this service's schema, then make it active."""
        bundle = await self.materialize(version, root)
        if bundle.manifest.schema_hash != schema_hash():
            raise ModelError(f"model {version!r} was trained on another feature schema")
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(MODEL_ACTIVE, version)
            pipe.rpush(MODEL_ACTIVATIONS, version)
            await pipe.execute()
        return bundle

    async def shadow(self) -> str | None:
        """The version scored in shadow, or ``None``."""
        raw = await self.client.get(MODEL_SHADOW)
        return None if raw is None else (raw.decode() if isinstance(raw, bytes) else str(raw))

    async def set_shadow(self, version: str | None, root: Path) -> Bundle | None:
        """Score ``version`` in shadow on live traffic (logged, never shown); ``None`` stops."""
        if version is None:
            await self.client.delete(MODEL_SHADOW)
            return None
        bundle = await self.materialize(version, root)
        if bundle.manifest.schema_hash != schema_hash():
            raise ModelError(f"model {version!r} was trained on another feature schema")
        await self.client.set(MODEL_SHADOW, version)
        return bundle

    async def rollback(self, root: Path) -> Bundle:
        """Re-activate the model active before the current one."""
        raw: list[Any] = await self.client.lrange(MODEL_ACTIVATIONS, 0, -1)
        history = [v.decode() if isinstance(v, bytes) else str(v) for v in raw]
        current = await self.active()
        earlier = [v for v in history if v != current]
        if not earlier:
            raise ModelError("nothing to roll back to: no other model was active before")
        return await self.activate(earlier[-1], root)


async def follow(
    client: aioredis.Redis,
    live: Live,
    metrics: Metrics,
    root: Path,
    cache_dir: Path,
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Serve each newly activated model until ``stop`` is set; keep the current on errors."""
    registry = ModelRegistry(client)
    current: str | None = None
    shadow_current: str | None = None
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            version = await registry.active()
            if version is not None and version != current:
                bundle = await registry.materialize(version, root)
                booster = await loop.run_in_executor(None, BoosterPredictor, bundle.model_file)
                _swap(live, metrics, LoadedModel(booster, bundle.manifest))
                current = version
                log.info("model %s is active (compiling the fast path)", version)
                compiled = await loop.run_in_executor(None, load_predictor, bundle, cache_dir)
                if current == version:
                    _swap(live, metrics, LoadedModel(compiled, bundle.manifest))
        except (RedisError, OSError) as exc:
            log.debug("cannot read the active model, keeping the current one: %s", exc)
        except ModelError as exc:
            log.error("active model refused, keeping the current one: %s", exc)
            current = version
        try:
            wanted = await registry.shadow()
            if wanted is None:
                if live.current.shadow is not None:
                    live.publish(shadow=None)
                shadow_current = None
            elif wanted != shadow_current:
                bundle = await registry.materialize(wanted, root)
                predictor = await loop.run_in_executor(None, load_predictor, bundle, cache_dir)
                live.publish(shadow=LoadedModel(predictor, bundle.manifest))
                shadow_current = wanted
                log.info("model %s is scored in shadow", wanted)
        except (RedisError, OSError, ModelError) as exc:
            log.debug("shadow model unchanged: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


def _swap(live: Live, metrics: Metrics, model: LoadedModel) -> None:
    previous = live.current.model
    live.publish(model=model)  # one object: a decision uses the old model or the new one
    if previous is not None:
        metrics.model_info.labels(
            previous.manifest.version, previous.predictor.kind, schema_hash()
        ).set(0)
    metrics.model_info.labels(model.manifest.version, model.predictor.kind, schema_hash()).set(1)
    metrics.model_loaded.set(1)

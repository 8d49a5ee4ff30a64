"""Helpers for tests: profiles written the way the service stores them, catalogs."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis

from service.features.profile import empty_profile, encode_profile
from service.settings import DEFAULT_CATALOG, REPO_DIR
from service.store.keyspace import PARTITIONS, log_key, profile_key

DAY = 86400.0
# for tests that count every decision: a VM stall of tens of ms must not turn one
# into a (correct) deadline fallback; the deadline has tests of its own
PATIENT: dict[str, Any] = {"decide_deadline_ms": 2000.0, "redis_timeout_ms": 1000.0}


def fan_profile(
    category: str, views: int = 30, tags: tuple[str, ...] = (), now: float | None = None
) -> dict[str, Any]:
    """A returning visitor who viewed many ``category`` pages yesterday."""
    now = time.time() if now is None else now
    yesterday = now - DAY
    profile = empty_profile(now - 20 * DAY)
    profile.update(
        last=yesterday,
        sessions=6,
        views=views + 5,
        price_sum=2.0 * views,
        price_n=views,
        cat={category: [float(views), yesterday], "general": [1.0, now - 10 * DAY]},
        tag={t: [float(views) / 2, yesterday] for t in tags},
        recent=[category] * 8,
    )
    return profile


def store_profile(url: str, visitor_id: str, profile: dict[str, Any]) -> None:
    """Write a profile where the decision path reads it."""
    client = redis.Redis.from_url(url)
    client.set(profile_key(visitor_id), encode_profile(profile))
    client.close()


def cookie_visitor(response: Any) -> str | None:
    """The visitor id in a response's ``persona_vid`` cookie (``None`` when none was set)."""
    morsel = response.cookies.get("persona_vid")
    if morsel is None or not morsel.value:
        return None
    return str(morsel.value).split(".", 1)[0]


def catalog_without_randomness(tmp_path: Path) -> Path:
    """The demo catalog with exploration and holdout off, for deterministic rankings."""
    doc = orjson.loads(DEFAULT_CATALOG.read_bytes())
    for p in doc["placements"]:
        p["explore_share"] = 0.0
        p["holdout_share"] = 0.0
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(doc))
    return path


def log_kinds(url: str) -> dict[str, int]:
    """How many entries of each type the event log holds, over every partition."""
    from service.store.keyspace import PARTITIONS, log_key

    r = redis.Redis.from_url(url)
    kinds: dict[str, int] = {}
    for p in range(PARTITIONS):
        for _, fields in r.xrange(log_key(p)):
            kind = orjson.loads(fields[b"e"])["type"]
            kinds[kind] = kinds.get(kind, 0) + 1
    r.close()
    return kinds


async def wait_for_log(url: str, kind: str, n: int) -> dict[str, int]:
    """The log's counts once it holds ``n`` entries of ``kind`` (decisions are written a few
    milliseconds after their answer, not awaited); fails after 3 s."""
    import asyncio

    for _ in range(300):
        kinds = log_kinds(url)
        if kinds.get(kind, 0) >= n:
            return kinds
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {n} {kind} entries in the log, found {log_kinds(url)}")


@dataclass(frozen=True)
class CliResult:
    """What a ``persona`` command printed and returned."""

    returncode: int
    stdout: str
    stderr: str


_CLI_LOCK = threading.Lock()


def run_persona(args: list[str], env: dict[str, str] | None = None) -> CliResult:
    """Run the ``persona`` command in this process (its real entry point), with ``env``
    set for its duration; from async code, call it with ``asyncio.to_thread``."""
    from service.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _CLI_LOCK, _environment(env or {}), redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse refusing the arguments
            code = exc.code if isinstance(exc.code, int) else 2
    return CliResult(code, out.getvalue(), err.getvalue())


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def tiny_bundle(tmp_path: Path, version: str) -> Path:
    """A small model bundle of the current feature schema (5 trees on random rows)."""
    """A small model of the service's schema that scores differently from the default."""
    import lightgbm
    import numpy as np

    from service.features.schema import FEATURE_NAMES, schema_hash
    from service.scoring.bundle import Manifest, file_sha256, write_manifest

    rng = np.random.default_rng(3)
    x = rng.random((2000, len(FEATURE_NAMES)))
    y = (x[:, 0] + rng.random(2000) > 1.0).astype(float)
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 20},
        lightgbm.Dataset(x, label=y, feature_name=list(FEATURE_NAMES)),
        num_boost_round=5,
    )
    folder = tmp_path / version
    folder.mkdir()
    booster.save_model(str(folder / "model.txt"))
    write_manifest(
        folder,
        Manifest(
            version=version,
            feature_names=FEATURE_NAMES,
            schema_hash=schema_hash(),
            model_sha256=file_sha256(folder / "model.txt"),
            objective="binary",
            num_trees=5,
            metrics={},
            training={"source": "test"},
            created_at="2026-12-01T00:00:00Z",
        ),
    )
    return folder


def exploring_catalog(tmp_path: Path) -> Path:
    doc = orjson.loads(DEFAULT_CATALOG.read_bytes())
    for p in doc["placements"]:
        p["explore_share"], p["holdout_share"] = 0.5, 0.0
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(doc))
    return path


def logged_decisions(url: str) -> list[dict[str, Any]]:
    """Every decision entry of the log, with its visitor and partition."""
    r = redis.Redis.from_url(url)
    out = []
    for p in range(PARTITIONS):
        for _, fields in r.xrange(log_key(p)):
            e = orjson.loads(fields[b"e"])
            if e["type"] == "decision":
                out.append({**e, "_visitor": fields[b"v"].decode(), "_partition": p})
    r.close()
    return out


def doc_snippet(doc: str, name: str) -> str:
    """The fenced code block after ``<!-- snippet: name -->`` in a document of the repository."""
    text = (REPO_DIR / doc).read_text()
    marker = f"<!-- snippet: {name} -->"
    assert marker in text, f"{doc} has no snippet {name!r}"
    after = text.split(marker, 1)[1].lstrip()
    assert after.startswith("```"), f"the snippet {name!r} of {doc} is not a fenced block"
    return after.split("\n", 1)[1].split("\n```", 1)[0]

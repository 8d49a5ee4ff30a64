"""Training data from the event log: logged decisions joined with their clicks.

A decision entry carries what its rows were built from (profile snapshot,
context, time, catalog version), so the row of the variant shown is rebuilt
with the serving feature builder exactly as it was scored. Its label is 1 when
a click on that decision and variant arrived within the attribution window,
else 0. Holdout and fallback decisions are skipped (the model did not choose
them); so are decisions whose catalog version is unknown to the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis

from models.outcomes import Label, Outcomes
from service.admin.config import ConfigError, ConfigStore, validate
from service.catalog.model import Catalog
from service.decide.record import context_of
from service.events.archive_store import ArchiveStore
from service.events.history import log_entries
from service.features.builder import row_for_view, visitor_view
from service.features.schema import FEATURE_NAMES, N_FEATURES
from service.scoring.bundle import (
    Manifest,
    load_bundle,
)
from service.scoring.predictor import COMPILED_DIR, compile_bundle

LEARNABLE_POLICIES = ("model", "explore")


@dataclass
class LogRows:
    """Rows of shown variants, their labels, decision times and logged propensities."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    t: npt.NDArray[np.float64]
    propensity: npt.NDArray[np.float64]
    skipped: dict[str, int] = field(default_factory=dict)
    label: Label = "click"
    """What ``y`` marks: a click on the variant, or a conversion after the decision."""


class RowBuilder:
    """Builds training rows from log entries as they stream by (any order).

    A decision's row depends only on its own entry, so it is built when the
    entry is read and only the row (not the entry) is kept: a million logged
    decisions take a fraction of what their entries would. Outcomes (clicks, or
    conversions with ``label="conversion"``) are joined at the end.
    """

    def __init__(
        self,
        catalog_for: Callable[[str], Catalog | None],
        half_life_s: float,
        attribution_s: float = 1800.0,
        label: Label = "click",
    ) -> None:
        self.catalog_for = catalog_for
        self.half_life_s = half_life_s
        self.outcomes = Outcomes(label, attribution_s)
        self.skipped: dict[str, int] = {}
        self._seen: set[str] = set()
        self._rows: list[npt.NDArray[np.float64]] = []
        self._keys: list[tuple[str, str]] = []
        self._t: list[float] = []
        self._p: list[float] = []

    def add(self, e: dict[str, Any]) -> None:
        """Take one log entry (decisions build a row, outcomes are remembered)."""
        if self.outcomes.add(e) or e.get("type") != "decision":
            return
        decision_id = str(e.get("decision_id"))
        if decision_id in self._seen:  # a write retried after a lost connection may land twice
            return
        self._seen.add(decision_id)
        why = _skip_reason(e, self.catalog_for)
        if why is not None:
            self.skipped[why] = self.skipped.get(why, 0) + 1
            return
        catalog = self.catalog_for(str(e["catalog_version"]))
        assert catalog is not None
        placement = catalog.placements[e["placement"]]
        now = float(e["timestamp"])
        index = [v.id for v in placement.variants].index(e["variant_id"])
        view = visitor_view(e.get("profile"), now, self.half_life_s)
        self._rows.append(row_for_view(view, context_of(e), placement, index, now))
        self._keys.append((decision_id, str(e["variant_id"])))
        self._t.append(now)
        self._p.append(float(e["propensity"]))

    def finish(self) -> LogRows:
        """The rows in time order, labelled 1 when the outcome came within the window."""
        order = np.argsort(np.array(self._t), kind="stable")
        t = np.array(self._t)[order]
        y = np.zeros(len(order))
        for i, j in enumerate(order):
            decision_id, variant_id = self._keys[j]
            y[i] = self.outcomes.reward(decision_id, variant_id, float(t[i]))
        x = np.vstack(self._rows)[order] if self._rows else np.zeros((0, N_FEATURES))
        return LogRows(x, y, t, np.array(self._p)[order], dict(self.skipped), self.outcomes.label)


def rows_from_log(
    entries: Iterable[dict[str, Any]],
    catalog_for: Callable[[str], Catalog | None],
    half_life_s: float,
    attribution_s: float = 1800.0,
    label: Label = "click",
) -> LogRows:
    """Join decisions with their outcomes and rebuild the shown variants' feature rows."""
    builder = RowBuilder(catalog_for, half_life_s, attribution_s, label)
    for e in entries:
        builder.add(e)
    return builder.finish()


def _skip_reason(d: dict[str, Any], catalog_for: Callable[[str], Catalog | None]) -> str | None:
    if d.get("policy") not in LEARNABLE_POLICIES:
        return f"policy {d.get('policy')}"
    catalog = catalog_for(str(d.get("catalog_version")))
    if catalog is None:
        return "unknown catalog version"
    placement = catalog.placements.get(str(d.get("placement")))
    if placement is None or d.get("variant_id") not in {v.id for v in placement.variants}:
        return "placement or variant not in its catalog"
    return None


def train_from_rows(
    rows: LogRows,
    out: Path,
    *,
    seed: int = 7,
    valid_share: float = 0.2,
    source: str = "log",
    compile_predictor: bool = True,
) -> Manifest:
    """Train a click model on logged rows (time split, early stopping) and write a bundle.

    The bundle holds the model, its manifest and, unless ``compile_predictor``
    is false, the compiled fast predictor for this machine's lleaves/llvmlite
    (``compiled/``), which the service then loads instead of compiling.
    """
    import lightgbm

    from models.train import LGB_PARAMS, auc, logloss, write_bundle

    n = len(rows.y)
    if n < 200 or rows.y.sum() < 10:
        raise ValueError(f"too little data to train: {n} rows, {int(rows.y.sum())} {rows.label}s")
    cut = int(n * (1 - valid_share))  # rows are in time order: validate on the latest
    params = {**LGB_PARAMS, "seed": seed, "min_data_in_leaf": max(20, min(500, n // 200))}
    dtrain = lightgbm.Dataset(rows.x[:cut], label=rows.y[:cut], feature_name=list(FEATURE_NAMES))
    dvalid = lightgbm.Dataset(rows.x[cut:], label=rows.y[cut:], reference=dtrain)
    booster = lightgbm.train(
        {**params, "metric": ["binary_logloss", "auc"]},
        dtrain,
        num_boost_round=1000,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[lightgbm.early_stopping(50, verbose=False)],
    )
    p_valid = np.asarray(
        booster.predict(rows.x[cut:], num_iteration=booster.best_iteration), dtype=np.float64
    )
    first, last = float(rows.t[0]), float(rows.t[-1])
    day = datetime.fromtimestamp(last, UTC)
    manifest = write_bundle(
        out,
        booster,
        prefix="log",
        day=day,
        num_iteration=booster.best_iteration,
        objective=str(params["objective"]),
        num_trees=booster.best_iteration or booster.num_trees(),
        metrics={
            "valid_auc": round(auc(rows.y[cut:], p_valid), 6),
            "valid_logloss": round(logloss(rows.y[cut:], p_valid), 6),
            "valid_ctr": round(float(rows.y[cut:].mean()), 6),
            "best_iteration": int(booster.best_iteration),
        },
        training={
            "source": source,
            "label": rows.label,
            "rows": n,
            "train_rows": cut,
            "valid_rows": n - cut,
            "split": f"by time: the latest {valid_share:.0%} of decisions validate",
            "valid_from_ts": float(rows.t[cut]),
            "window": {
                "from": datetime.fromtimestamp(first, UTC).isoformat(),
                "to": day.isoformat(),
            },
            "skipped": rows.skipped,
            "seed": seed,
            "lightgbm": {"version": lightgbm.__version__, "params": params},
        },
        created_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    )
    if compile_predictor:
        compile_bundle(load_bundle(out), out / COMPILED_DIR)
    return manifest


async def rows_from_redis(
    client: aioredis.Redis,
    since: float,
    file_catalog: Catalog | None,
    half_life_s: float,
    attribution_s: float = 1800.0,
    label: Label = "click",
    archive: ArchiveStore | None = None,
) -> LogRows:
    """Training rows from the log since ``since``, streamed (entries are not kept): from
    Redis, and from ``archive`` for what Redis no longer holds."""
    resolve = await catalog_resolver(client, file_catalog)
    builder = RowBuilder(resolve, half_life_s, attribution_s, label)
    async for e in log_entries(client, since, archive):
        builder.add(e)
    return builder.finish()


async def read_log(
    client: aioredis.Redis, since: float, archive: ArchiveStore | None = None
) -> list[dict[str, Any]]:
    """Every log entry (decisions and events) since ``since``, from all partitions: from
    Redis, and from ``archive`` for what Redis no longer holds."""
    return [e async for e in log_entries(client, since, archive)]


async def catalog_resolver(
    client: aioredis.Redis, file_catalog: Catalog | None
) -> Callable[[str], Catalog | None]:
    """Catalogs by the version a decision logged: published versions ``vN``, or the file's."""
    store = ConfigStore(client)
    found: dict[str, Catalog | None] = {}
    if file_catalog is not None:
        found[file_catalog.version] = file_catalog
    for version in await store.history():
        try:
            _, catalog = validate(version.doc)
        except ConfigError:
            continue
        found[f"v{version.number}"] = catalog
    return found.get

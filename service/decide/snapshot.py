"""The live snapshot: catalog, model, shadow model and their caches, replaced as one object.

A decision reads :attr:`Live.current` once and uses that snapshot throughout,
so it sees the old configuration and model or the new ones, never a mix. Only
the configuration follower and the model follower (and start-up) publish a
new snapshot. The caches belong to the snapshot: an unknown visitor's rows
depend only on the placement and the request context (kept while the catalog
is the same), their scores also on the model (started afresh with each model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from service.catalog.model import Catalog
from service.features.context import Context
from service.scoring.bundle import Manifest
from service.scoring.predictor import Predictor

CACHE_LIMIT = 4096
"""Entries one placement's cache holds (a few per request context) before starting over."""

Rows = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model ready to score, with its manifest."""

    predictor: Predictor
    manifest: Manifest


class _Bounded:
    """A dict that starts over once it holds CACHE_LIMIT entries (a few hundred KB at most)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[Context, Rows] = {}

    def get(self, ctx: Context, make: Callable[[], Rows]) -> Rows:
        found = self._items.get(ctx)
        if found is None:
            found = make()
            found.setflags(write=False)
            if len(self._items) >= CACHE_LIMIT:
                self._items.clear()
            self._items[ctx] = found
        return found

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class PlacementCache:
    """An unknown visitor's rows and scores in one placement, by request context."""

    rows: _Bounded = field(default_factory=_Bounded)
    scores: _Bounded = field(default_factory=_Bounded)

    def with_new_scores(self) -> PlacementCache:
        """The same rows, no scores (for another model)."""
        return PlacementCache(self.rows, _Bounded())


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a decision reads besides the person: one immutable object."""

    catalog: Catalog | None = None
    model: LoadedModel | None = None
    shadow: LoadedModel | None = None
    caches: dict[str, PlacementCache] = field(default_factory=dict)

    def cache(self, placement: str) -> PlacementCache:
        """The placement's cache (an empty one for a placement of another catalog)."""
        found = self.caches.get(placement)
        return found if found is not None else PlacementCache()


_KEEP: Any = object()


def snapshot_of(
    catalog: Catalog | None,
    model: LoadedModel | None,
    shadow: LoadedModel | None = None,
    previous: Snapshot | None = None,
) -> Snapshot:
    """A snapshot of these parts, keeping what of ``previous``'s caches still holds."""
    caches: dict[str, PlacementCache] = {}
    if catalog is not None:
        same_catalog = previous is not None and previous.catalog is catalog
        same_model = previous is not None and previous.model is model
        for name in catalog.placements:
            old = previous.caches.get(name) if same_catalog and previous is not None else None
            if old is None:
                caches[name] = PlacementCache()
            else:
                caches[name] = old if same_model else old.with_new_scores()
    return Snapshot(catalog, model, shadow, caches)


class Live:
    """The current snapshot, replaced as one object."""

    def __init__(self) -> None:
        self._current = Snapshot()

    @property
    def current(self) -> Snapshot:
        """The snapshot decisions use now."""
        return self._current

    def publish(
        self,
        *,
        catalog: Catalog | None = _KEEP,
        model: LoadedModel | None = _KEEP,
        shadow: LoadedModel | None = _KEEP,
    ) -> Snapshot:
        """Replace some parts; the rest (and the caches that still hold) carry over."""
        old = self._current
        self._current = snapshot_of(
            old.catalog if catalog is _KEEP else catalog,
            old.model if model is _KEEP else model,
            old.shadow if shadow is _KEEP else shadow,
            old,
        )
        return self._current

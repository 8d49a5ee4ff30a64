"""A simulator of visitors, their histories and their clicks (the training data).

Each simulated :class:`Visitor` has latent tastes the service never sees:
category preferences (a sparse Dirichlet draw, so most people have one or two
favourite categories), tag preferences within those categories, a device and a
price sensitivity with a preferred price band. Returning visitors get a stored
profile built from ~60 days of past sessions with :mod:`models.profiles`, the
same way tracked events build live profiles: page views drawn from their tastes,
past impressions of the demo variants (mostly the slot's default, as a site
shows before it personalizes) and the clicks those earned. New visitors have no
profile (``None``).

:func:`click_probability` is the ground truth: a logistic model of the
variant's fit to the visitor's latent tastes and the context. The service can
only infer those tastes from the profile, so the AUC of the true probabilities
is the ceiling a model can reach.

:func:`generate_dataset` logs decisions as a uniformly random policy would:
build the feature rows of every variant of a slot with
:func:`service.features.builder.build_rows`, show one variant chosen uniformly
(so the model sees every variant in every situation), and draw the click from
its true probability. Everything comes from one ``numpy.random.Generator``, so a
seed reproduces the data exactly.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from models.profiles import (
    apply_click,
    apply_conversion,
    apply_feedback,
    apply_impression,
    apply_view,
)
from service.catalog.loader import parse_catalog
from service.catalog.model import Catalog, Placement, Variant
from service.features.builder import build_rows
from service.features.context import Context
from service.features.profile import Profile, empty_profile
from service.features.schema import N_FEATURES
from service.settings import DEFAULT_CATALOG

DAY_S = 86400.0
HALF_LIFE_S = 14 * DAY_S
"""Affinity half-life used to build rows (the service's default of 14 days)."""

REFERENCE_NOW = 1748736000.0
"""The simulation's fixed "now": 2025-06-01T00:00:00Z (never the wall clock)."""

GENERAL = "general"
"""The category of catalog-wide variants (the defaults): no visitor prefers it."""

GENERIC_TAGS = frozenset({"sale", "guide", "shipping"})
"""Tags that describe a kind of content, not a taste; pages are never tagged with them."""

DEVICE_SHARES = (("mobile", 0.5), ("desktop", 0.4), ("tablet", 0.1))
REFERRER_SHARES = (
    ("direct", 0.35),
    ("search", 0.30),
    ("social", 0.15),
    ("email", 0.10),
    ("ads", 0.05),
    ("other", 0.05),
)
HISTORY_PAGE_SHARES = (
    ("home", 0.2),
    ("category", 0.3),
    ("product", 0.3),
    ("search", 0.1),
    ("other", 0.1),
)
# Relative traffic by hour of day (UTC is taken as the visitors' local time).
# fmt: off
HOUR_WEIGHTS = (
    1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 3.5,
    4, 4, 3.5, 3.5, 3.5, 4, 4.5, 5, 5, 4.5, 3.5, 2,
)
# fmt: on
# Where each demo slot appears: page types and their shares.
PLACEMENT_PAGES: dict[str, tuple[tuple[str, float], ...]] = {
    "home-hero": (("home", 1.0),),
    "sidebar-offer": (("category", 0.5), ("product", 0.3), ("search", 0.2)),
    "article-footer": (("other", 1.0),),
}
ANY_PAGE = (("home", 0.2), ("category", 0.3), ("product", 0.3), ("search", 0.1), ("other", 0.1))


@dataclass(frozen=True, slots=True)
class SimParams:
    """The simulator's knobs: the true click model and the population."""

    # Click model (log-odds terms).
    base_logit: float = -4.3
    pref_weight: float = 3.0
    general_appeal: float = 0.18
    tag_weight: float = 1.2
    price_weight: float = 0.35
    discount_weight: float = 2.0
    page_match: float = 0.6
    fatigue_per_impression: float = 0.2
    fatigue_cap: int = 8
    fatigue_half_life_days: float = 7.0
    mobile: float = -0.15
    tablet: float = 0.05
    evening: float = 0.15
    night: float = -0.2
    # Population.
    dirichlet_alpha: float = 0.12
    new_visitor_share: float = 0.25
    history_days: float = 60.0
    max_sessions: int = 80
    session_pareto_shape: float = 1.2
    in_session_share: float = 0.3
    page_on_taste: float = 0.85
    decision_share: float = 0.5
    history_default_share: float = 0.6
    same_device_share: float = 0.9
    draws_per_visitor: int = 8

    def to_json(self) -> dict[str, Any]:
        """The parameters as a JSON-able dict (recorded in the model manifest)."""
        return asdict(self)


DEFAULT_PARAMS = SimParams()


@dataclass(frozen=True, slots=True)
class World:
    """What the simulator derives from a catalog: categories, their tags, slots."""

    catalog: Catalog
    categories: tuple[str, ...]
    category_tags: dict[str, tuple[str, ...]]
    placements: tuple[Placement, ...]
    placements_by_page: dict[str, tuple[Placement, ...]]


def demo_catalog() -> Catalog:
    """The demo catalog shipped with the service."""
    return parse_catalog(DEFAULT_CATALOG.read_bytes(), origin=str(DEFAULT_CATALOG))


def make_world(catalog: Catalog | None = None) -> World:
    """Index ``catalog`` (the demo catalog by default) for the simulator."""
    catalog = catalog if catalog is not None else demo_catalog()
    placements = tuple(catalog.placements[name] for name in sorted(catalog.placements))
    tags: dict[str, dict[str, None]] = {}
    for placement in placements:
        for v in placement.variants:
            if v.category != GENERAL:
                bucket = tags.setdefault(v.category, {})
                bucket.update(dict.fromkeys(t for t in v.tags if t not in GENERIC_TAGS))
    if not tags:
        raise ValueError("the catalog has no variant outside the 'general' category")
    by_page: dict[str, list[Placement]] = {}
    for placement in placements:
        for page, _ in PLACEMENT_PAGES.get(placement.name, ANY_PAGE):
            by_page.setdefault(page, []).append(placement)
    return World(
        catalog=catalog,
        categories=tuple(tags),
        category_tags={c: tuple(ts) for c, ts in tags.items()},
        placements=placements,
        placements_by_page={p: tuple(ps) for p, ps in by_page.items()},
    )


@dataclass(slots=True)
class Visitor:
    """A simulated person: latent tastes plus the profile the service would hold."""

    id: str
    prefs: dict[str, float]
    """Category -> share of interest (sums to 1 over the world's categories)."""
    tag_prefs: dict[str, float]
    """Tag -> chance a product page they view carries it (sums to 1)."""
    tag_weights: dict[str, float]
    """Tag -> relative liking, used to pick the tags of viewed pages."""
    device: str
    price_band: int
    """Preferred price band (1 cheap - 3 premium)."""
    price_sensitivity: float
    """0 (indifferent to discounts) - 1 (hunts discounts); low bands go with high values."""
    profile: Profile | None = field(default=None)
    """The stored profile as of the population's ``now``; ``None`` for a new visitor."""


def _cumulative(weights: Sequence[float]) -> list[float]:
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _pick(rng: np.random.Generator, cum: Sequence[float]) -> int:
    """Index drawn with probabilities proportional to the increments of ``cum``."""
    i = bisect.bisect_right(cum, float(rng.random()) * cum[-1])
    return min(i, len(cum) - 1)


_DEVICE_CUM = _cumulative([w for _, w in DEVICE_SHARES])
_REFERRER_CUM = _cumulative([w for _, w in REFERRER_SHARES])
_HISTORY_PAGE_CUM = _cumulative([w for _, w in HISTORY_PAGE_SHARES])
_HOUR_CUM = _cumulative(HOUR_WEIGHTS)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def click_logit(
    visitor: Visitor,
    variant: Variant,
    ctx: Context,
    profile: Profile | None,
    now: float,
    params: SimParams = DEFAULT_PARAMS,
) -> float:
    """The log-odds of :func:`click_probability`."""
    c = variant.category
    z = params.base_logit
    if c == GENERAL:
        z += params.pref_weight * params.general_appeal
    else:
        z += params.pref_weight * visitor.prefs.get(c, 0.0)
    if variant.tags:
        z += params.tag_weight * sum(visitor.tag_prefs.get(t, 0.0) for t in variant.tags)
    if variant.price_band >= 1:
        z += params.price_weight * (1.0 - abs(variant.price_band - visitor.price_band))
    z += params.discount_weight * variant.discount * visitor.price_sensitivity
    if ctx.category is not None and ctx.category == c:
        z += params.page_match
    if profile:
        seen = profile.get("var", {}).get(variant.id)
        if seen:
            unclicked = min(max(0, seen[0] - seen[1]), params.fatigue_cap)
            if unclicked:
                age_days = max(0.0, now - float(seen[2])) / DAY_S
                z -= (
                    params.fatigue_per_impression
                    * unclicked
                    * 2.0 ** (-age_days / params.fatigue_half_life_days)
                )
    if ctx.device == "mobile":
        z += params.mobile
    elif ctx.device == "tablet":
        z += params.tablet
    if 18 <= ctx.hour <= 22:
        z += params.evening
    elif ctx.hour <= 5:
        z += params.night
    return z


def click_probability(
    visitor: Visitor,
    variant: Variant,
    ctx: Context,
    profile: Profile | None,
    now: float,
    params: SimParams = DEFAULT_PARAMS,
) -> float:
    """The true chance that ``visitor`` clicks ``variant`` shown in ``ctx`` at ``now``.

    Logistic of: a base rate; ``pref_weight`` x the visitor's latent share of
    interest in the variant's category (``general`` variants get the constant
    ``general_appeal`` instead); ``tag_weight`` x the visitor's summed interest
    in the variant's tags; a price-band match term for priced variants; the
    discount weighted by price sensitivity; a bonus when the page's category is
    the variant's; a fatigue penalty per earlier impression of this variant
    without a click (from ``profile``, fading with a 7-day half-life); small
    device and hour-of-day effects.
    """
    return _sigmoid(click_logit(visitor, variant, ctx, profile, now, params))


# --- population -----------------------------------------------------------------------------


def _page_category(
    visitor: Visitor,
    page_type: str,
    world: World,
    rng: np.random.Generator,
    pref_cum: Sequence[float],
    params: SimParams,
) -> str | None:
    if page_type == "home":
        return None
    if page_type in ("search", "other") and rng.random() < 0.4:
        return None
    if rng.random() < params.page_on_taste:
        return world.categories[_pick(rng, pref_cum)]
    return world.categories[int(rng.integers(len(world.categories)))]


def _page_tags(
    visitor: Visitor, page_type: str, category: str | None, world: World, rng: np.random.Generator
) -> list[str]:
    if category is None or page_type not in ("product", "search"):
        return []
    vocab = world.category_tags.get(category, ())
    if not vocab:
        return []
    cum = _cumulative([visitor.tag_weights.get(t, 0.0) for t in vocab])
    first = vocab[_pick(rng, cum)]
    if page_type == "product" and len(vocab) > 1 and rng.random() < 0.5:
        second = vocab[_pick(rng, cum)]
        if second != first:
            return [first, second]
    return [first]


def _new_visitor(index: int, world: World, rng: np.random.Generator, params: SimParams) -> Visitor:
    cats = world.categories
    shares = rng.dirichlet([params.dirichlet_alpha] * len(cats))
    prefs = {c: float(s) for c, s in zip(cats, shares, strict=True)}
    all_tags = list(dict.fromkeys(t for c in cats for t in world.category_tags[c]))
    raw = rng.gamma(1.0, size=len(all_tags))
    weights = {t: float(w) + 1e-3 for t, w in zip(all_tags, raw, strict=True)}
    tag_prefs = _tag_prefs(prefs, weights, world)
    device = draw_device(rng)
    sensitivity = float(rng.random())
    band = 1 if sensitivity > 0.6 else 2 if sensitivity > 0.2 else 3
    return Visitor(
        id=f"sim-{index:07d}",
        prefs=prefs,
        tag_prefs=tag_prefs,
        tag_weights=weights,
        device=device,
        price_band=band,
        price_sensitivity=sensitivity,
    )


def _tag_prefs(
    prefs: dict[str, float], weights: dict[str, float], world: World
) -> dict[str, float]:
    """Each tag's share of interest: its category's share split by the tag weights."""
    tag_prefs = dict.fromkeys(weights, 0.0)
    for c in world.categories:
        vocab = world.category_tags[c]
        if not vocab:
            continue
        total = sum(weights[t] for t in vocab)
        for t in vocab:
            tag_prefs[t] += prefs[c] * weights[t] / total
    return tag_prefs


def drift_tastes(
    visitor: Visitor,
    world: World,
    rng: np.random.Generator,
    amount: float,
    params: SimParams = DEFAULT_PARAMS,
) -> None:
    """Move ``visitor``'s category interests ``amount`` of the way to a fresh draw.

    Tastes drift: a new hobby, a season, a life change. The tag weights stay
    (what someone likes within a category is steadier), so the tag interests
    follow the new category shares.
    """
    fresh = rng.dirichlet([params.dirichlet_alpha] * len(world.categories))
    visitor.prefs = {
        c: (1.0 - amount) * visitor.prefs[c] + amount * float(f)
        for c, f in zip(world.categories, fresh, strict=True)
    }
    visitor.tag_prefs = _tag_prefs(visitor.prefs, visitor.tag_weights, world)


@dataclass(frozen=True, slots=True)
class Page:
    """A page a visitor opens: its type, category, tags and price band."""

    page_type: str
    category: str | None
    tags: list[str]
    price_band: int | None


def draw_page(
    visitor: Visitor, world: World, rng: np.random.Generator, params: SimParams = DEFAULT_PARAMS
) -> Page:
    """The next page ``visitor`` views: mostly in the categories and tags they like."""
    pref_cum = _cumulative([visitor.prefs[c] for c in world.categories])
    return _draw_page(visitor, world, rng, pref_cum, params)


def _draw_page(
    visitor: Visitor,
    world: World,
    rng: np.random.Generator,
    pref_cum: Sequence[float],
    params: SimParams,
) -> Page:
    page_type = HISTORY_PAGE_SHARES[_pick(rng, _HISTORY_PAGE_CUM)][0]
    category = _page_category(visitor, page_type, world, rng, pref_cum, params)
    tags = _page_tags(visitor, page_type, category, world, rng)
    price = None
    if page_type == "product" and category is not None:
        price = min(3, max(1, visitor.price_band + round(float(rng.normal(0.0, 0.6)))))
    return Page(page_type, category, tags, price)


def draw_device(rng: np.random.Generator) -> str:
    """A device kind by the population's shares."""
    return DEVICE_SHARES[_pick(rng, _DEVICE_CUM)][0]


def draw_referrer(rng: np.random.Generator) -> str:
    """A referrer class by the population's shares."""
    return REFERRER_SHARES[_pick(rng, _REFERRER_CUM)][0]


def draw_hour(rng: np.random.Generator) -> int:
    """A local hour of day by the traffic's daily curve."""
    return _pick(rng, _HOUR_CUM)


def _session_starts(rng: np.random.Generator, now: float, params: SimParams) -> list[float]:
    extra = math.floor(float(rng.pareto(params.session_pareto_shape)) * 2.0)
    n = 1 + min(params.max_sessions - 1, extra)
    span = params.history_days * DAY_S
    starts = sorted(float(now - span * u) for u in rng.random(n))
    if rng.random() < params.in_session_share:
        starts[-1] = float(now - rng.uniform(60.0, 1200.0))
        starts.sort()
    return starts


def _history(
    visitor: Visitor, world: World, rng: np.random.Generator, now: float, params: SimParams
) -> Profile | None:
    """Simulate past sessions up to ``now``; the resulting profile (``None`` if no event)."""
    pref_cum = _cumulative([visitor.prefs[c] for c in world.categories])
    profile: Profile | None = None
    for start in _session_starts(rng, now, params):
        t = start
        referrer = REFERRER_SHARES[_pick(rng, _REFERRER_CUM)][0]
        device = visitor.device if rng.random() < params.same_device_share else (draw_device(rng))
        clicked = False
        n_pages = int(rng.geometric(0.35))
        for _ in range(n_pages):
            if t >= now:
                break
            if profile is None:
                profile = empty_profile(t)
            page = _draw_page(visitor, world, rng, pref_cum, params)
            page_type, category, tags, price = (
                page.page_type,
                page.category,
                page.tags,
                page.price_band,
            )
            slots = world.placements_by_page.get(page_type, ())
            if slots and rng.random() < params.decision_share:
                placement = slots[int(rng.integers(len(slots)))]
                if rng.random() < params.history_default_share:
                    shown = placement.default_variant
                else:
                    shown = placement.variants[int(rng.integers(len(placement.variants)))]
                tm = time.gmtime(t)
                ctx = Context(device, page_type, category, referrer, tm.tm_hour, tm.tm_wday)
                p = click_probability(visitor, shown, ctx, profile, t, params)
                apply_view(
                    profile,
                    category=category,
                    tags=tags,
                    price_band=price,
                    ts=t,
                    half_life_s=HALF_LIFE_S,
                )
                apply_impression(profile, variant_id=shown.id, ts=t)
                if rng.random() < p:
                    clicked = True
                    apply_click(
                        profile,
                        variant_id=shown.id,
                        category=shown.category,
                        ts=t + 5.0,
                        half_life_s=HALF_LIFE_S,
                    )
            else:
                apply_view(
                    profile,
                    category=category,
                    tags=tags,
                    price_band=price,
                    ts=t,
                    half_life_s=HALF_LIFE_S,
                )
            t += 20.0 + float(rng.exponential(75.0))
        if profile is not None and t < now:
            if rng.random() < (0.12 if clicked else 0.03):
                value = 25.0 * visitor.price_band * float(rng.lognormal(0.0, 0.5))
                apply_conversion(profile, value=round(value, 2), ts=t)
            if rng.random() < 0.02:
                apply_feedback(profile, rating=int(rng.integers(1, 8)), ts=t)
    return profile


def make_population(
    n: int,
    rng: np.random.Generator,
    now: float = REFERENCE_NOW,
    *,
    world: World | None = None,
    params: SimParams = DEFAULT_PARAMS,
) -> list[Visitor]:
    """``n`` visitors with latent tastes; returning ones carry their profile as of ``now``."""
    world = world if world is not None else make_world()
    visitors: list[Visitor] = []
    for i in range(n):
        visitor = _new_visitor(i, world, rng, params)
        if rng.random() >= params.new_visitor_share:
            visitor.profile = _history(visitor, world, rng, now, params)
        visitors.append(visitor)
    return visitors


# --- decisions and data sets ----------------------------------------------------------------


def draw_context(
    visitor: Visitor,
    placement: Placement,
    world: World,
    rng: np.random.Generator,
    params: SimParams = DEFAULT_PARAMS,
) -> Context:
    """A plausible request context for showing ``placement`` to ``visitor``."""
    pages = PLACEMENT_PAGES.get(placement.name, ANY_PAGE)
    page_type = pages[_pick(rng, _cumulative([w for _, w in pages]))][0]
    pref_cum = _cumulative([visitor.prefs[c] for c in world.categories])
    category = _page_category(visitor, page_type, world, rng, pref_cum, params)
    device = visitor.device if rng.random() < params.same_device_share else (draw_device(rng))
    return Context(
        device=device,
        page_type=page_type,
        category=category,
        referrer=REFERRER_SHARES[_pick(rng, _REFERRER_CUM)][0],
        hour=_pick(rng, _HOUR_CUM),
        dow=int(rng.integers(7)),
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """One simulated request: who, where, in which context, and every variant's row."""

    visitor_index: int
    placement: Placement
    ctx: Context
    rows: npt.NDArray[np.float64]


def iter_decisions(
    population: Sequence[Visitor],
    n: int,
    rng: np.random.Generator,
    now: float = REFERENCE_NOW,
    *,
    world: World | None = None,
    params: SimParams = DEFAULT_PARAMS,
) -> Iterator[Decision]:
    """``n`` decisions: a random visitor, a random slot, a context, the slot's rows."""
    world = world if world is not None else make_world()
    for _ in range(n):
        vi = int(rng.integers(len(population)))
        visitor = population[vi]
        placement = world.placements[int(rng.integers(len(world.placements)))]
        ctx = draw_context(visitor, placement, world, rng, params)
        rows = build_rows(visitor.profile, ctx, placement, now, HALF_LIFE_S)
        yield Decision(vi, placement, ctx, rows)


@dataclass(frozen=True, slots=True)
class Dataset:
    """Logged decisions of a uniformly random policy: one row per shown variant."""

    x: npt.NDArray[np.float64]
    """Feature rows, ``(n, N_FEATURES)``."""
    y: npt.NDArray[np.float64]
    """1.0 for a click, else 0.0."""
    p_true: npt.NDArray[np.float64]
    """The true click probability of each row."""
    visitor: npt.NDArray[np.int64]
    """Index of the visitor in the population (for held-out splits)."""
    placement: npt.NDArray[np.int64]
    """Index of the slot in ``World.placements``."""


def generate_dataset(
    n_rows: int,
    rng: np.random.Generator,
    now: float = REFERENCE_NOW,
    *,
    world: World | None = None,
    params: SimParams = DEFAULT_PARAMS,
    population: Sequence[Visitor] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Dataset, list[Visitor]]:
    """Simulate ``n_rows`` uniformly logged decisions; return them and the population.

    Without a ``population``, one of ``n_rows // params.draws_per_visitor``
    visitors is made first (from the same ``rng``).
    """
    world = world if world is not None else make_world()
    people = (
        list(population)
        if population is not None
        else make_population(
            max(1, n_rows // params.draws_per_visitor), rng, now, world=world, params=params
        )
    )
    index = {p.name: i for i, p in enumerate(world.placements)}
    x = np.empty((n_rows, N_FEATURES), dtype=np.float64)
    y = np.empty(n_rows, dtype=np.float64)
    p_true = np.empty(n_rows, dtype=np.float64)
    who = np.empty(n_rows, dtype=np.int64)
    where = np.empty(n_rows, dtype=np.int64)
    decisions = iter_decisions(people, n_rows, rng, now, world=world, params=params)
    for i, d in enumerate(decisions):
        j = int(rng.integers(len(d.placement.variants)))
        visitor = people[d.visitor_index]
        p = click_probability(visitor, d.placement.variants[j], d.ctx, visitor.profile, now, params)
        x[i] = d.rows[j]
        p_true[i] = p
        y[i] = 1.0 if rng.random() < p else 0.0
        who[i] = d.visitor_index
        where[i] = index[d.placement.name]
        if progress is not None and (i + 1) % 50_000 == 0:
            progress(i + 1)
    return Dataset(x=x, y=y, p_true=p_true, visitor=who, placement=where), people

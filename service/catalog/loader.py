"""Loading the catalog from a source, validated, behind one interface.

The service only knows :class:`CatalogSource`; today the source is a JSON file,
later the admin API's versioned store implements the same protocol.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from service.audiences.conditions import ConditionError, compile_audiences, compile_condition
from service.audiences.facts import FACTS
from service.catalog.model import Catalog, Placement, Variant, static_feature_matrix

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# Python's "$" also matches before a final newline; "\Z" does not.
ID_STRICT = ID_PATTERN[:-1] + r"\Z"

Id = Annotated[str, msgspec.Meta(pattern=ID_STRICT)]
Category = Annotated[str, msgspec.Meta(pattern=ID_STRICT)]
Share = Annotated[float, msgspec.Meta(ge=0.0, le=0.5)]


class CatalogError(ValueError):
    """The catalog is invalid; the message names the item and the problem."""


class ScheduleDoc(msgspec.Struct, forbid_unknown_fields=True):
    """When a variant may be shown: local times in a time zone (either end open)."""

    start: datetime | None = None
    end: datetime | None = None
    timezone: str = "UTC"


class VariantDoc(msgspec.Struct, forbid_unknown_fields=True):
    """A variant as written in the catalog file."""

    id: Id
    content: dict[str, Any]
    category: Category
    tags: list[Category] = []
    price_band: Annotated[int, msgspec.Meta(ge=0, le=3)] = 0
    discount: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0
    priority: Annotated[int, msgspec.Meta(ge=-100, le=100)] = 0
    attributes: dict[str, Any] = {}
    rule: dict[str, Any] | None = None
    schedule: ScheduleDoc | None = None
    status: Literal["live", "paused"] = "live"
    frequency_cap: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None


class PlacementDoc(msgspec.Struct, forbid_unknown_fields=True):
    """A placement as written in the catalog file."""

    name: Id
    variants: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=200)]
    default_variant: Id
    description: str = ""
    explore_share: Share = 0.0
    holdout_share: Share = 0.0
    frequency_cap: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    status: Literal["draft", "live", "paused"] = "live"
    count: Annotated[int, msgspec.Meta(ge=1, le=20)] = 1


class CatalogDoc(msgspec.Struct, forbid_unknown_fields=True):
    """The whole catalog: variants, placements and the audiences their rules name."""

    variants: list[VariantDoc]
    placements: list[PlacementDoc]
    audiences: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)


class CatalogSource(Protocol):
    """Where the catalog comes from."""

    async def load(self) -> Catalog:
        """Return the current catalog, validated, or raise :class:`CatalogError`."""
        ...


def parse_catalog(raw: bytes, origin: str = "catalog") -> Catalog:
    """Validate a catalog document and compile it into the hot-path index."""
    try:
        doc = msgspec.json.decode(raw, type=CatalogDoc)
    except msgspec.ValidationError as exc:
        raise CatalogError(f"{origin}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise CatalogError(f"{origin}: not valid JSON ({exc})") from None
    try:
        compile_audiences(doc.audiences, FACTS)
    except ConditionError as exc:
        raise CatalogError(f"{origin}: {exc.message} - at `{exc.path}`") from None
    variants: dict[str, Variant] = {}
    for i, v in enumerate(doc.variants):
        if v.id in variants:
            raise CatalogError(f"{origin}: variant {v.id!r} is defined twice")
        rule = None
        if v.rule is not None:
            try:
                rule = compile_condition(v.rule, FACTS, doc.audiences)
            except ConditionError as exc:
                at = exc.path.replace("$", f"$.variants[{i}].rule", 1)
                raise CatalogError(f"{origin}: {exc.message} - at `{at}`") from None
        start, end = _schedule(v.schedule, f"{origin}: variant {v.id!r}", i)
        variants[v.id] = Variant(
            id=v.id,
            content=v.content,
            category=v.category,
            tags=tuple(v.tags),
            price_band=v.price_band,
            discount=v.discount,
            priority=v.priority,
            attributes=v.attributes,
            rule=rule,
            start=start,
            end=end,
            paused=v.status == "paused",
            frequency_cap=v.frequency_cap,
        )
    placements: dict[str, Placement] = {}
    for p in doc.placements:
        where = f"{origin}: placement {p.name!r}"
        if p.name in placements:
            raise CatalogError(f"{where} is defined twice")
        if len(set(p.variants)) != len(p.variants):
            raise CatalogError(f"{where} lists a variant twice")
        unknown = [vid for vid in p.variants if vid not in variants]
        if unknown:
            raise CatalogError(f"{where} references unknown variants {', '.join(unknown)}")
        if p.default_variant not in p.variants:
            raise CatalogError(
                f"{where}: default_variant {p.default_variant!r} is not among its variants"
            )
        members = tuple(variants[vid] for vid in p.variants)
        placements[p.name] = Placement(
            name=p.name,
            description=p.description,
            variants=members,
            default_variant=variants[p.default_variant],
            explore_share=p.explore_share,
            holdout_share=p.holdout_share,
            frequency_cap=p.frequency_cap,
            status=p.status,
            count=p.count,
            static_features=static_feature_matrix(members, p.default_variant),
        )
    version = hashlib.sha256(raw).hexdigest()[:12]
    return Catalog(version=version, placements=placements)


def _schedule(doc: ScheduleDoc | None, where: str, index: int) -> tuple[float | None, float | None]:
    """The schedule as Unix seconds; naive times are local to its time zone."""
    if doc is None:
        return None, None
    at = f"$.variants[{index}].schedule"
    try:
        zone = ZoneInfo(doc.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CatalogError(
            f"{where}: unknown time zone {doc.timezone!r} - at `{at}.timezone`"
        ) from None

    def epoch(value: datetime | None) -> float | None:
        if value is None:
            return None
        return (value if value.tzinfo else value.replace(tzinfo=zone)).timestamp()

    start, end = epoch(doc.start), epoch(doc.end)
    if start is not None and end is not None and end <= start:
        raise CatalogError(f"{where}: the schedule ends before it starts - at `{at}.end`")
    return start, end


class FileCatalogSource:
    """Reads the catalog from a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def load(self) -> Catalog:
        """Read and validate the file."""
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise CatalogError(f"cannot read catalog {self.path}: {exc.strerror}") from None
        return parse_catalog(raw, origin=str(self.path))

"""Loading the catalog from a source, validated, behind one interface.

The service only knows :class:`CatalogSource`; today the source is a JSON file,
later the admin API's versioned store implements the same protocol.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Protocol

import msgspec

from service.catalog.model import Catalog, Placement, Variant, static_feature_matrix

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# Python's "$" also matches before a final newline; "\Z" does not.
ID_STRICT = ID_PATTERN[:-1] + r"\Z"
_ID_RE = re.compile(ID_STRICT)

Id = Annotated[str, msgspec.Meta(pattern=ID_STRICT)]
Category = Annotated[str, msgspec.Meta(pattern=ID_STRICT)]
Share = Annotated[float, msgspec.Meta(ge=0.0, le=0.5)]


class CatalogError(ValueError):
    """The catalog is invalid; the message names the item and the problem."""


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


class PlacementDoc(msgspec.Struct, forbid_unknown_fields=True):
    """A placement as written in the catalog file."""

    name: Id
    variants: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=200)]
    default_variant: Id
    description: str = ""
    explore_share: Share = 0.0
    holdout_share: Share = 0.0
    frequency_cap: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None


class CatalogDoc(msgspec.Struct, forbid_unknown_fields=True):
    """The whole catalog file."""

    variants: list[VariantDoc]
    placements: list[PlacementDoc]


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
    variants: dict[str, Variant] = {}
    for v in doc.variants:
        if v.id in variants:
            raise CatalogError(f"{origin}: variant {v.id!r} is defined twice")
        variants[v.id] = Variant(
            id=v.id,
            content=v.content,
            category=v.category,
            tags=tuple(v.tags),
            price_band=v.price_band,
            discount=v.discount,
            priority=v.priority,
            attributes=v.attributes,
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
            static_features=static_feature_matrix(members, p.default_variant),
        )
    version = hashlib.sha256(raw).hexdigest()[:12]
    return Catalog(version=version, placements=placements)


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


def is_valid_id(value: str) -> bool:
    """Whether ``value`` is a valid placement/variant/category id."""
    return bool(_ID_RE.match(value))

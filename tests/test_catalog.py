"""Catalog loading: the demo file is valid, and invalid catalogs are refused clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from service.catalog.loader import CatalogError, FileCatalogSource, parse_catalog
from service.settings import DEFAULT_CATALOG


def doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "variants": [
            {"id": "a", "content": {"title": "A"}, "category": "running", "tags": ["shoes"]},
            {"id": "b", "content": {"title": "B"}, "category": "general", "price_band": 2},
        ],
        "placements": [
            {"name": "slot", "variants": ["a", "b"], "default_variant": "b"},
        ],
    }
    base.update(changes)
    return base


async def test_demo_catalog_loads_with_home_hero_and_ten_variants() -> None:
    catalog = await FileCatalogSource(DEFAULT_CATALOG).load()
    hero = catalog.placements["home-hero"]
    assert len(hero.variants) == 10
    assert hero.default_variant.id == "hero-welcome"
    assert hero.static_features.shape == (10, 5)
    assert hero.static_features[hero.default_index][1] == 1.0  # a_is_default


def test_valid_catalog_compiles() -> None:
    catalog = parse_catalog(orjson.dumps(doc()))
    slot = catalog.placements["slot"]
    assert [v.id for v in slot.variants] == ["a", "b"]
    assert slot.default_index == 1
    assert slot.static_features.tolist() == [[0, 0, 0, 1, 0], [2, 1, 0, 0, 0]]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"placements": [{"name": "slot", "variants": ["a"], "default_variant": "b"}]},
            "default_variant 'b' is not among its variants",
        ),
        (
            {"placements": [{"name": "slot", "variants": ["a", "zz"], "default_variant": "a"}]},
            "unknown variants zz",
        ),
        (
            {"placements": [{"name": "slot", "variants": ["a", "a"], "default_variant": "a"}]},
            "lists a variant twice",
        ),
        (
            {"placements": [{"name": "Slot!", "variants": ["a"], "default_variant": "a"}]},
            "placements[0].name",
        ),
        (
            {
                "placements": [
                    {"name": "s", "variants": ["a"], "default_variant": "a", "holdout_share": 0.9}
                ]
            },
            "holdout_share",
        ),
        (
            {"placements": [{"name": "s", "variants": ["a"], "default_variant": "a", "x": 1}]},
            "unknown field `x`",
        ),
        (
            {
                "variants": [
                    {"id": "a", "content": {}, "category": "c"},
                    {"id": "a", "content": {}, "category": "c"},
                ]
            },
            "defined twice",
        ),
        (
            {"variants": [{"id": "a", "content": {}, "category": "c", "price_band": 9}]},
            "price_band",
        ),
    ],
)
def test_invalid_catalogs_are_refused_with_a_clear_message(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(orjson.dumps(doc(**changes)))
    assert message in str(info.value)


async def test_missing_file_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read catalog"):
        await FileCatalogSource(tmp_path / "nope.json").load()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CatalogError, match="not valid JSON"):
        await FileCatalogSource(tmp_path / "bad.json").load()

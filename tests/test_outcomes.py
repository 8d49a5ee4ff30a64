"""Outcomes of logged decisions: clicks or conversions, within the attribution window."""

from __future__ import annotations

from typing import Any

import pytest

from models.fromlog import rows_from_log
from models.outcomes import Outcomes
from models.simulator import demo_catalog
from service.decide.record import entry
from service.decide.types import Decision
from service.features.context import Context

T0 = 1_780_000_000.0


def _click(decision: str, variant: str, at: float) -> dict[str, Any]:
    return {"type": "click", "decision_id": decision, "variant_id": variant, "timestamp": at}


def _conversion(decision: str, at: float) -> dict[str, Any]:
    return {"type": "conversion", "decision_id": decision, "value": 30.0, "timestamp": at}


@pytest.mark.parametrize(
    ("label", "events", "expected"),
    [
        ("click", [_click("d1", "a", T0 + 10)], 1.0),
        ("click", [_click("d1", "b", T0 + 10)], 0.0),  # another variant of the decision
        ("click", [_click("d2", "a", T0 + 10)], 0.0),  # another decision
        ("click", [_click("d1", "a", T0 - 1)], 0.0),  # before the decision
        ("click", [_click("d1", "a", T0 + 1801)], 0.0),  # after the window
        ("click", [_click("d1", "a", T0 + 1801), _click("d1", "a", T0 + 60)], 1.0),  # earliest
        ("click", [_conversion("d1", T0 + 10)], 0.0),  # a conversion is not a click
        ("conversion", [_conversion("d1", T0 + 600)], 1.0),
        ("conversion", [_click("d1", "a", T0 + 10)], 0.0),
        ("conversion", [_conversion("d1", T0 + 4000)], 0.0),
        ("conversion", [_conversion("d2", T0 + 10)], 0.0),
    ],
)
def test_reward_table(label: Any, events: list[dict[str, Any]], expected: float) -> None:
    outcomes = Outcomes(label, attribution_s=1800.0)
    assert all(outcomes.add(e) for e in events)
    assert outcomes.reward("d1", "a", T0) == expected


def test_other_entries_are_not_outcomes_and_labels_are_checked() -> None:
    outcomes = Outcomes()
    assert not outcomes.add({"type": "view", "timestamp": T0})
    assert not outcomes.add({"type": "click", "variant_id": "a", "timestamp": T0})  # no decision
    with pytest.raises(ValueError, match="label must be one of click, conversion"):
        Outcomes("purchase")  # type: ignore[arg-type]


def test_training_rows_take_conversions_as_labels_when_asked() -> None:
    catalog = demo_catalog()
    placement = catalog.placements["home-hero"]
    ctx = Context("mobile", "home", None, "direct", 12, 3)
    entries: list[dict[str, Any]] = []
    for i in range(6):
        decision = Decision(
            placement=placement.name,
            decision_id=f"{i:027x}",
            variant_id=placement.variants[i].id,
            content=None,
            policy="explore",
            fallback=None,
            propensity=0.1,
            model_version="m",
            candidates=tuple((v.id, 0.0) for v in placement.variants),
        )
        entries.append(entry(decision, ctx, None, T0 + i, catalog.version, 1.0))
    entries += [
        _click(f"{0:027x}", placement.variants[0].id, T0 + 5),
        _conversion(f"{1:027x}", T0 + 100),
        _click(f"{2:027x}", placement.variants[2].id, T0 + 7),
        _conversion(f"{2:027x}", T0 + 300),
    ]
    known = {catalog.version: catalog}.get
    clicks = rows_from_log(entries, known, 14 * 86400)
    conversions = rows_from_log(entries, known, 14 * 86400, label="conversion")
    assert list(clicks.y) == [1, 0, 1, 0, 0, 0] and clicks.label == "click"
    assert list(conversions.y) == [0, 1, 1, 0, 0, 0] and conversions.label == "conversion"

"""What happened after a decision: its click or conversion, within an attribution window.

Training labels and offline evaluation rewards come from here, so both read
the log the same way. A click counts for the decision and variant it names; a
conversion counts for the decision it names (whichever variant was shown).
The earliest outcome counts, and only when it came within ``attribution_s``
after the decision (clock skew can put it slightly before: not counted).
"""

from __future__ import annotations

from typing import Any, Literal

Label = Literal["click", "conversion"]
LABELS: tuple[Label, ...] = ("click", "conversion")


class Outcomes:
    """Clicks and conversions by decision, collected from log entries in any order."""

    def __init__(self, label: Label = "click", attribution_s: float = 1800.0) -> None:
        if label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}, not {label!r}")
        self.label = label
        self.attribution_s = attribution_s
        self._clicks: dict[tuple[str, str], float] = {}
        self._conversions: dict[str, float] = {}

    def add(self, e: dict[str, Any]) -> bool:
        """Remember ``e`` if it is a click or conversion tied to a decision; say whether."""
        kind, decision_id = e.get("type"), e.get("decision_id")
        if not decision_id or kind not in LABELS:
            return False
        at = float(e.get("timestamp") or 0.0)
        if kind == "click":
            key = (str(decision_id), str(e.get("variant_id")))
            self._clicks[key] = min(at, self._clicks.get(key, at))
        else:
            self._conversions[str(decision_id)] = min(
                at, self._conversions.get(str(decision_id), at)
            )
        return True

    def reward(self, decision_id: str, variant_id: str, decided_at: float) -> float:
        """1.0 when the decision earned its outcome within the window, else 0.0."""
        at = (
            self._clicks.get((decision_id, variant_id))
            if self.label == "click"
            else self._conversions.get(decision_id)
        )
        return 1.0 if at is not None and 0 <= at - decided_at <= self.attribution_s else 0.0

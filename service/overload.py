"""Shedding before queueing: the event loop's lag decides when a request is answered at once.

A timer due every ``PROBE_INTERVAL_S`` measures how late the loop runs it.
When requests arrive faster than the process can serve them, every loop
iteration grows longer and the timer runs late; past the budget
(``PERSONA_OVERLOAD_LAG_MS``) the service answers decisions with the slots'
defaults (no Redis read, no scoring) and event batches with 503, which costs a
fraction of a full answer, so the loop catches up instead of queueing without
bound. A request handled while the timer is already overdue by more than the
budget also sheds: the probe cannot run while the loop is stuck behind work,
so its last measurement alone would be too late.
"""

from __future__ import annotations

import asyncio

from service.tally import HistogramTally

PROBE_INTERVAL_S = 0.005
MAX_EVENT_BATCHES_IN_FLIGHT = 512
"""Event batches waiting for Redis at once, past which new ones are answered 503."""


class Overload:
    """The process's overload state: read on every request, updated by :meth:`run`."""

    __slots__ = ("_budget_s", "_due", "_lag_s", "_loop", "_observed", "events_in_flight")

    def __init__(self, budget_s: float, lag: HistogramTally | None = None) -> None:
        self._budget_s = budget_s
        self._lag_s = 0.0
        self._due = float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._observed = lag
        self.events_in_flight = 0

    @property
    def lag_s(self) -> float:
        """The lag the probe measured last."""
        return self._lag_s

    def shedding(self) -> bool:
        """Whether a request arriving now should be answered without the expensive work."""
        if self._lag_s > self._budget_s:
            return True
        loop = self._loop
        return loop is not None and loop.time() - self._due > self._budget_s

    def events_full(self) -> bool:
        """Whether a new event batch should be refused: the loop lags or too many wait."""
        return self.events_in_flight >= MAX_EVENT_BATCHES_IN_FLIGHT or self.shedding()

    async def run(self, stop: asyncio.Event) -> None:
        """Measure the loop's lag until ``stop`` is set."""
        loop = self._loop = asyncio.get_running_loop()
        observe = self._observed.observe if self._observed is not None else None
        while not stop.is_set():
            self._due = loop.time() + PROBE_INTERVAL_S
            await asyncio.sleep(PROBE_INTERVAL_S)
            lag = max(loop.time() - self._due, 0.0)
            self._lag_s = lag
            if observe is not None:
                observe(lag)
        self._due = float("inf")

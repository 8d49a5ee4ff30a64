"""A circuit breaker: after repeated failures, stop waiting on Redis for a while.

While open, reads fail at once (the slot's default is served) instead of each
request waiting out its timeout; after the cool-down one probe is let through
(half-open) and its outcome closes or re-opens the breaker. The cool-down
starts short, so a blip of a few late replies (a busy or paused host) costs a
fraction of a second of defaults rather than a whole second, and doubles with
each failed probe up to a ceiling, so a Redis that stays down is probed rarely.

Failures only open the breaker when they are spread over at least
``min_span_s`` (the read timeout): when the host pauses, every read in flight
times out at the same instant, which says nothing about Redis, while a Redis
that is down or hung keeps failing reads started one after the other.
"""

from __future__ import annotations

from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = 0, 1, 2


class Breaker:
    """Consecutive-failure circuit breaker with an injected clock."""

    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        clock: Callable[[], float],
        max_cooldown_s: float | None = None,
        min_span_s: float = 0.0,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.threshold = failures
        self._on_change = on_change
        self.min_span_s = min_span_s
        self._first_failure = 0.0
        self.base_cooldown_s = cooldown_s
        self.max_cooldown_s = max(cooldown_s, max_cooldown_s or cooldown_s)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.state = CLOSED
        self._failures = 0
        self._open_until = 0.0
        self._probing = False

    def allow(self) -> bool:
        """Whether a request may go to Redis now."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self._clock() < self._open_until:
                return False
            self._set(HALF_OPEN)
            self._probing = False
        if self._probing:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        """Record a successful call; closes the breaker."""
        self._set(CLOSED)
        self._failures = 0
        self._probing = False
        self.cooldown_s = self.base_cooldown_s

    def failure(self) -> bool:
        """Record a failed call; return True if this opened the breaker."""
        now = self._clock()
        if self._failures == 0:
            self._first_failure = now
        self._failures += 1
        spread = now - self._first_failure >= self.min_span_s
        if self.state == HALF_OPEN or (self._failures >= self.threshold and spread):
            if self.state == HALF_OPEN:  # the probe failed: Redis is still down
                self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
            opened = self.state != OPEN
            self._set(OPEN)
            self._open_until = now + self.cooldown_s
            self._probing = False
            return opened
        return False

    def _set(self, state: int) -> None:
        if state != self.state:
            self.state = state
            if self._on_change is not None:
                self._on_change(state)

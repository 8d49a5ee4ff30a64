"""A circuit breaker: after repeated failures, stop waiting on Redis for a while.

While open, reads fail at once (the slot's default is served) instead of each
request waiting out its timeout; after the cool-down one probe is let through
(half-open) and its outcome closes or re-opens the breaker.
"""

from __future__ import annotations

from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = 0, 1, 2


class Breaker:
    """Consecutive-failure circuit breaker with an injected clock."""

    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float]) -> None:
        self.threshold = failures
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
            self.state = HALF_OPEN
            self._probing = False
        if self._probing:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        """Record a successful call; closes the breaker."""
        self.state = CLOSED
        self._failures = 0
        self._probing = False

    def failure(self) -> bool:
        """Record a failed call; return True if this opened the breaker."""
        self._failures += 1
        if self.state == HALF_OPEN or self._failures >= self.threshold:
            opened = self.state != OPEN
            self.state = OPEN
            self._open_until = self._clock() + self.cooldown_s
            self._probing = False
            return opened
        return False

"""The circuit breaker's state machine, with a controlled clock."""

from __future__ import annotations

from service.store.breaker import CLOSED, HALF_OPEN, OPEN, Breaker


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_opens_after_threshold_and_probes_after_cooldown() -> None:
    clock = Clock()
    b = Breaker(3, 1.0, clock)
    assert b.allow()
    assert not b.failure() and not b.failure()
    assert b.state == CLOSED
    assert b.failure() and b.state == OPEN
    assert not b.allow()
    clock.t = 0.99
    assert not b.allow()
    clock.t = 1.01
    assert b.allow() and b.state == HALF_OPEN
    assert not b.allow()  # one probe at a time
    b.success()
    assert b.state == CLOSED and b.allow()


def test_failed_probe_reopens() -> None:
    clock = Clock()
    b = Breaker(1, 1.0, clock)
    b.failure()
    clock.t = 2.0
    assert b.allow()
    b.failure()
    assert b.state == OPEN and not b.allow()
    clock.t = 3.1
    assert b.allow()


def test_success_resets_consecutive_count() -> None:
    b = Breaker(3, 1.0, Clock())
    b.failure()
    b.failure()
    b.success()
    b.failure()
    b.failure()
    assert b.state == CLOSED

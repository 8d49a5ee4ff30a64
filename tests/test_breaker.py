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


def test_cooldown_doubles_while_probes_fail_and_resets_on_success() -> None:
    clock = Clock()
    b = Breaker(1, 0.25, clock, max_cooldown_s=0.75)
    b.failure()  # opened: first cool-down 0.25 s
    waits = []
    for _ in range(4):
        start = clock.t
        while not b.allow():
            clock.t += 0.125
        waits.append(clock.t - start)
        b.failure()  # the probe failed
    assert waits == [0.25, 0.5, 0.75, 0.75]
    clock.t += 0.75
    assert b.allow()
    b.success()
    assert b.state == CLOSED and b.cooldown_s == 0.25
    b.failure()
    clock.t += 0.25
    assert b.allow()  # back to the short cool-down


def test_failures_at_one_instant_do_not_open_it() -> None:
    """A paused host times out every read in flight at once: not a sign Redis is down."""
    clock = Clock()
    b = Breaker(3, 0.25, clock, min_span_s=0.003)
    for _ in range(10):
        b.failure()
    assert b.state == CLOSED and b.allow()
    clock.t = 0.004  # failures keep coming, reads started one after the other
    assert b.failure() and b.state == OPEN
    b2 = Breaker(3, 0.25, clock, min_span_s=0.003)
    b2.failure()
    b2.success()  # a success in between starts the span again
    clock.t = 0.008
    b2.failure()
    b2.failure()
    assert not b2.failure() and b2.state == CLOSED


def test_each_state_change_is_reported_once() -> None:
    clock = Clock()
    seen: list[int] = []
    b = Breaker(2, 0.25, clock, on_change=seen.append)
    b.failure()
    b.failure()  # opens
    b.failure()  # already open: no new report
    clock.t = 0.5
    assert b.allow()  # half-open
    b.success()  # closes
    b.success()  # still closed: no new report
    assert seen == [OPEN, HALF_OPEN, CLOSED]

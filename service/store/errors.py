"""Errors of the store adapters, each naming the fallback reason it causes."""


class StoreError(Exception):
    """Redis could not answer; ``reason`` is the fallback reason reported."""

    reason = "redis_error"


class StoreTimeout(StoreError):
    """Redis did not answer within the deadline."""

    reason = "redis_timeout"


class StoreUnavailable(StoreError):
    """Redis is unreachable, or the breaker is open and we do not try."""

    reason = "redis_unavailable"


class StoreReplyError(StoreUnavailable):
    """Redis answered a command with an error reply (e.g. ``NOSCRIPT``)."""

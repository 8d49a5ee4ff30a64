"""Log lines as text or JSON, each carrying the id of the request it belongs to.

The request id is the caller's ``X-Request-Id`` when it is a plain token of
at most 128 characters, or one minted here (a per-process random prefix and a
counter: unique across processes and restarts, and cheaper than a UUID on
every request). It goes back in the response's ``X-Request-Id`` and into every
line logged while the request is handled (a context variable: aiohttp runs
each request in a task of its own). Log lines never carry a visitor's or a
customer's id: the code logs outcomes, routes and codes, and a test greps the
log of a full workload for every id it used.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_PREFIX = os.urandom(5).hex()
_counter = itertools.count(1)


def request_id(given: str | None) -> str:
    """The caller's request id when it is acceptable, else a new one; set for this task."""
    rid = (
        given if given is not None and _VALID.fullmatch(given) else f"{_PREFIX}-{next(_counter):x}"
    )
    REQUEST_ID.set(rid)
    return rid


class _RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (``-`` outside a request) and the worker to every record."""

    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        record.worker = self.worker
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, worker, error."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "worker": getattr(record, "worker", "main"),
        }
        rid = getattr(record, "request_id", "-")
        if rid != "-":
            doc["request_id"] = rid
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


TEXT_FORMAT = "%(asctime)s %(worker)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def configure(level: str, fmt: str, worker: str = "main") -> None:
    """Send the process's log to stderr as ``fmt`` (``text`` or ``json``) from ``level`` up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter(worker))
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

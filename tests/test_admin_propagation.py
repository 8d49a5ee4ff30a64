"""A publish reaches both worker processes within a second, without a restart."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from tests.served import served


def call(port: int, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Connection": "close"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else orjson.dumps(body),
        method=method,
        headers=headers,
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return orjson.loads(r.read())


def flash_title(port: int) -> str | None:
    """The flash slot's title, on a new connection (so either worker may answer)."""
    body = call(port, "POST", "/v1/decide", {"placements": ["flash"]})
    content = body["decisions"]["flash"]["content"]
    return None if content is None else str(content["title"])


def test_a_publish_reaches_every_worker_within_a_second(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    with served(service_env, tmp_path, ["config:write", "publish"], workers=2) as service:
        port, token = service.port, service.token
        for title in ("First flash", "Second flash"):
            variant = {"category": "general", "content": {"title": title}}
            call(port, "PUT", "/v1/admin/variants/flash-offer", variant, token)
            placement = {"variants": ["flash-offer"], "default_variant": "flash-offer"}
            call(port, "PUT", "/v1/admin/placements/flash", placement, token)
            before = {flash_title(port) for _ in range(20)}
            assert title not in before  # a draft is not served
            call(port, "POST", "/v1/admin/publish", {}, token)
            published = time.monotonic()
            last_stale = published
            streak = 0
            while streak < 40:  # 40 answers in a row from either worker
                seen = flash_title(port)
                if seen == title:
                    streak += 1
                else:
                    streak = 0
                    last_stale = time.monotonic()
                    assert last_stale - published < 5, "the publish never arrived"
            assert last_stale - published <= 1.0

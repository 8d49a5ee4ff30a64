"""The demo page is served, self-contained, and asks for consent before personalizing."""

from __future__ import annotations

import re
from typing import Any

from service.settings import PACKAGE_DIR

PAGE = (PACKAGE_DIR / "static" / "demo.html").read_text()


def test_no_asset_or_call_leaves_the_site() -> None:
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", PAGE)
    assert "http://" not in PAGE and "https://" not in PAGE


def test_fetches_a_decision_with_the_consent_header() -> None:
    assert 'fetch("/v1/decide"' in PAGE
    assert '"X-Persona-Consent": consentHeader()' in PAGE
    assert "home-hero" in PAGE


async def test_served_at_demo_and_root_redirects(client: Any) -> None:
    resp = await client.get("/demo")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert await resp.text() == PAGE
    root = await client.get("/", allow_redirects=False)
    assert root.status == 302 and root.headers["Location"] == "/demo"

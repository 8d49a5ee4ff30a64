"""The demo page in a real browser: it renders both slots, asks for consent, stays on the site.

Debian's chromium driven by Playwright, against the service as a real process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import expect, sync_playwright

from service.settings import DEFAULT_CATALOG
from tests.helpers import CHROMIUM, FLAGS
from tests.served import Served, served

SLOTS = ("home-hero", "sidebar-offer")


@pytest.fixture
def service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    """The service on a private Redis."""
    with served(service_env, tmp_path, ["config:read"]) as s:
        yield s


def titles() -> dict[str, set[str]]:
    """Every title each slot may show (its variants' contents)."""
    catalog = orjson.loads(DEFAULT_CATALOG.read_bytes())
    variants = {v["id"]: v for v in catalog["variants"]}
    return {
        p["name"]: {variants[v]["content"]["title"] for v in p["variants"]}
        for p in catalog["placements"]
        if p["name"] in SLOTS
    }


def test_both_slots_render_after_consent_and_nothing_leaves_the_site(service: Served) -> None:
    origin = f"http://127.0.0.1:{service.port}"
    requests: list[str] = []
    console: list[str] = []
    decide_headers: list[dict[str, Any]] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: console.append(m.text))
        page.on(
            "request",
            lambda r: decide_headers.append(r.headers) if r.url.endswith("/v1/decide") else None,
        )
        response = page.goto(f"{origin}/demo")
        assert response is not None and response.ok
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        possible = titles()
        for slot in SLOTS:  # before any choice: the page's generic content
            expect(page.locator(f"#slot-{slot}")).to_have_attribute("aria-busy", "false")
        assert decide_headers[-1]["x-persona-consent"] == "none"
        assert not [c for c in page.context.cookies() if c["name"] == "persona_vid"]
        page.get_by_role("button", name="Personalize").click()
        for slot in SLOTS:
            locator = page.locator(f"#slot-{slot} h2, #slot-{slot} h3").first
            expect(locator).to_be_visible()
            assert locator.inner_text() in possible[slot]
        assert decide_headers[-1]["x-persona-consent"] == "personalization,analytics"
        assert [c for c in page.context.cookies() if c["name"] == "persona_vid"]
        browser.close()
    assert requests and all(u.startswith(origin + "/") for u in requests), requests
    assert not [m for m in console if "Content Security Policy" in m], console


async def test_served_at_demo_and_root_redirects(client: Any) -> None:
    resp = await client.get("/demo")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
    root = await client.get("/", allow_redirects=False)
    assert root.status == 302 and root.headers["Location"] == "/demo"

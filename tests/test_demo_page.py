"""The demo page is served, self-contained, and asks for consent before personalizing.

Static checks of the page's source; a real-browser test comes later.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from service.settings import DEFAULT_CATALOG, PACKAGE_DIR

PAGE = (PACKAGE_DIR / "static" / "demo.html").read_text()
SLOTS = ("home-hero", "sidebar-offer")


def test_no_asset_or_call_leaves_the_site() -> None:
    assert "http://" not in PAGE and "https://" not in PAGE
    # every URL-valued attribute, CSS url() and fetch() target is a same-site path
    urls = re.findall(r"""\s(?:src|href|action)=["']?([^"'\s>]+)""", PAGE)  # HTML attributes
    urls += re.findall(r"""url\(\s*["']?([^"')]+)""", PAGE)
    urls += re.findall(r"""fetch\(\s*["']([^"']+)""", PAGE)
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
    # self-contained: no external scripts, stylesheets, fonts or imports
    assert not re.search(r"<script[^>]*\bsrc\b|<link\b|@import|<iframe\b", PAGE, re.I)


def test_fetches_a_decision_for_both_slots_with_the_consent_header() -> None:
    assert 'fetch("/v1/decide"' in PAGE
    assert 'method: "POST"' in PAGE
    assert 'credentials: "same-origin"' in PAGE
    assert '"X-Persona-Consent": consentHeader()' in PAGE
    assert 'const SLOTS = ["home-hero", "sidebar-offer"];' in PAGE
    assert 'page_type: "home"' in PAGE and "matchMedia(" in PAGE
    # ?scores=1 asks the server for the scores, and only then shows them
    assert 'get("scores") === "1"' in PAGE and "include_scores: showScores" in PAGE


def test_every_slot_has_a_skeleton_and_a_static_default() -> None:
    catalog = orjson.loads(DEFAULT_CATALOG.read_bytes())
    variants = {v["id"]: v for v in catalog["variants"]}
    defaults = {p["name"]: variants[p["default_variant"]] for p in catalog["placements"]}
    for slot in SLOTS:
        element = re.search(rf'<[a-z]+ class="slot[^"]*" id="slot-{slot}"[^>]*>', PAGE)
        assert element and 'aria-busy="true"' in element[0] and "skeleton" in element[0]
        # the page's own default is the slot's default variant, shown on any failure
        content = defaults[slot]["content"]
        assert f'"{slot}": {{ title: "{content["title"]}"' in PAGE, slot
    assert "AbortController" in PAGE  # a hung request ends in the defaults too


async def test_served_at_demo_and_root_redirects(client: Any) -> None:
    resp = await client.get("/demo")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert await resp.text() == PAGE
    root = await client.get("/", allow_redirects=False)
    assert root.status == 302 and root.headers["Location"] == "/demo"

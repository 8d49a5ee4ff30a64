"""The web SDK as a file and a route, ``GET /v1/me``, and the demo shop's pages (no browser)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

import orjson

from service.demo.pages import shop
from service.sdk import BUDGET_GZIP_BYTES, MINIFIED, PATH, SOURCE, Script, integrity_of, minify
from service.settings import DEFAULT_CATALOG
from tests.conftest import SERVER

CONSENT = {"X-Persona-Consent": "personalization,analytics"}


def test_the_committed_script_is_the_source_minified_and_within_its_budget() -> None:
    assert MINIFIED.read_text() == minify(SOURCE.read_text()), "run: python -m service.sdk"
    script = Script.load()
    assert len(script.gzipped) <= BUDGET_GZIP_BYTES, len(script.gzipped)
    assert len(script.body) < len(SOURCE.read_bytes())  # comments and indentation went
    assert script.body.startswith(b"/*! persona.js")  # the licence line stays


async def test_the_script_is_served_gzipped_cacheable_and_matches_its_integrity(
    client: Any,
) -> None:
    script = Script.load()
    resp = await client.get(PATH, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/javascript")
    assert resp.headers["Content-Encoding"] == "gzip"
    assert "max-age=31536000" in resp.headers["Cache-Control"]
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    body = gzip.decompress(await resp.read())
    assert integrity_of(body) == script.integrity
    assert script.integrity == "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()
    plain = await client.get(PATH, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and await plain.read() == body
    again = await client.get(PATH, headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304 and await again.read() == b""


async def test_me_shows_a_browser_only_its_own_profile(client: Any) -> None:
    nobody = await client.get("/v1/me")
    assert nobody.status == 200 and await nobody.json() == {"known": False, "profile": None}
    events = {
        "events": [
            {"type": "view", "event_id": f"me-view-{i:04d}", "category": "yoga", "tags": ["mat"]}
            for i in range(3)
        ]
    }
    sent = await client.post("/v1/events", json=events, headers=CONSENT)
    assert sent.status == 202 and (await sent.json())["accepted"] == 3
    mine = await (await client.get("/v1/me")).json()
    assert mine["known"] is True
    profile = mine["profile"]
    assert profile["page_views"] == 3 and profile["visits"] == 1
    assert profile["interests"][0]["name"] == "yoga" and profile["interests"][0]["weight"] > 0
    assert [t["name"] for t in profile["topics"]] == ["mat"]
    assert profile["recent_categories"] == ["yoga", "yoga", "yoga"]
    assert re.match(r"^\d{4}-\d\d-\d\dT", profile["first_seen"])
    # a browser may not ask about anyone else
    other = await client.get("/v1/me", params={"visitor_id": "V" * 10 + "abcdefghijklmn"})
    assert other.status == 403 and "server" in (await other.json())["message"]
    odd = await client.get("/v1/me", params={"who": "me"})
    assert odd.status == 400


async def test_me_lets_the_sites_server_name_a_visitor(server_client: Any) -> None:
    vid = "me-server-visitor-0123456789ab"
    event = {"type": "view", "event_id": "me-srv-0001", "visitor_id": vid, "category": "tennis"}
    sent = await server_client.post("/v1/events", json={"events": [event]}, headers=CONSENT)
    assert sent.status == 202
    resp = await server_client.get("/v1/me", params={"visitor_id": vid}, headers=SERVER)
    body = await resp.json()
    assert body["known"] and body["profile"]["interests"][0]["name"] == "tennis"
    weak = await server_client.get("/v1/me", params={"visitor_id": "0" * 30}, headers=SERVER)
    assert weak.status == 400


async def test_every_demo_page_renders_with_the_page_headers_and_every_slot_link_resolves(
    client: Any,
) -> None:
    s = shop()
    pages = ["/demo/", "/demo/cart", *(f"/demo/c/{c}" for c in s.categories)]
    pages += [f"/demo/p/{p}" for p in s.products]
    pages += [f"/demo/c/{c}?tag={t}" for c, t in s.collections]
    catalog = orjson.loads(DEFAULT_CATALOG.read_bytes())
    links = {v["content"]["link"] for v in catalog["variants"]}
    for path in [*pages, *links]:
        resp = await client.get(path)
        assert resp.status == 200, path
        assert "unsafe-inline" not in resp.headers["Content-Security-Policy"], path
        text = await resp.text()
        assert f'integrity="{Script.load().integrity}"' in text, path
        for href in re.findall(r'href="([^"]+)"', text):
            if href.startswith("/demo"):
                assert urlsplit(href).path in {urlsplit(p).path for p in [*pages, *links]}, href
    for missing in ("/demo/p/no-such-thing", "/demo/c/no-such-sport", "/demo/c/yoga?tag=x"):
        resp = await client.get(missing)
        assert resp.status == 404 and "Not found" in await resp.text()
    root = await client.get("/", allow_redirects=False)
    assert root.status == 302 and root.headers["Location"] == "/demo/"


async def test_demo_slot_defaults_are_the_catalogs_default_variants(client: Any) -> None:
    home = await (await client.get("/demo/")).text()
    catalog = orjson.loads(DEFAULT_CATALOG.read_bytes())
    variants = {v["id"]: v["content"] for v in catalog["variants"]}
    for placement in catalog["placements"]:
        if placement["name"] in ("home-hero", "sidebar-offer"):
            title = variants[placement["default_variant"]]["title"].replace("'", "&#x27;")
            assert title in home

"""Test pages for persona.js: a site's markup around the real SDK, and a browser tab on it.

Pages are served at the service's own origin by Playwright's router, so the SDK
talks to the real ``/v1/decide`` and ``/v1/events``.
"""

from __future__ import annotations

import contextlib
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from playwright.sync_api import Browser, Page, Request

from tests.conftest import process_env
from tests.served import Served, served

TIMEOUT_MS = 1500
# what each test page measures: layout shifts not caused by the visitor (CLS)
CLS_PROBE = """
window.__cls = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (!e.hadRecentInput) window.__cls += e.value;
}).observe({type: "layout-shift", buffered: true});
"""
HERO_TEMPLATE = """
<template id="tpl">
  <h2 data-persona-text="title"></h2><p data-persona-text="body"></p>
  <a data-persona-if="link" data-persona-attr="href:link" data-persona-text="cta"></a>
</template>"""


@contextlib.contextmanager
def sdk_service(tmp: Path, scopes: list[str]) -> Iterator[Served]:
    """The service for SDK pages: these tests are about the page, not the deadline
    (which has tests of its own), so it is patient."""
    env = {
        **process_env(tmp),
        "PERSONA_DECIDE_DEADLINE_MS": "1000",
        "PERSONA_REDIS_TIMEOUT_MS": "500",
    }
    with served(env, tmp, scopes) as s:
        yield s


def wait_until(check: Any, timeout_s: float = 30) -> None:
    """Poll ``check()`` until it is true."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.2)


def admin(s: Served, method: str, path: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{s.port}{path}",
        data=orjson.dumps(body),
        method=method,
        headers={"Authorization": f"Bearer {s.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status < 300


def decide_raw(s: Served, placements: list[str]) -> dict[str, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{s.port}/v1/decide",
        data=orjson.dumps({"placements": placements}),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        decisions: dict[str, Any] = orjson.loads(r.read())["decisions"]
        return decisions


def html(body: str, init: str) -> str:
    """A site's page: its markup, persona.js, and the site's call of it."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<style>body {{ margin: 0; font: 16px sans-serif; }}
.slot {{ display: block; padding: 8px; min-height: 220px; }}</style>
<script>{CLS_PROBE}</script>
<script src="/sdk/v1/persona.js"></script>
</head><body>{body}
<p id="below">Content below the slots</p>
<script>{init}</script></body></html>"""


class Site:
    """A browser tab on a test page, with every call the page made to Persona."""

    def __init__(self, browser: Browser, service: Served) -> None:
        self.origin = f"http://127.0.0.1:{service.port}"
        self.context = browser.new_context()
        self.page: Page = self.context.new_page()
        self.calls: list[tuple[str, dict[str, str], Any]] = []
        self.errors: list[str] = []
        self.page.on("request", self._record)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _record(self, r: Request) -> None:
        if "/v1/" in r.url:
            body = orjson.loads(r.post_data) if r.post_data else None
            self.calls.append((r.url[len(self.origin) :], r.headers, body))

    def open(self, page_html: str, path: str = "/site/page") -> None:
        self.page.route(
            self.origin + path,
            lambda route: route.fulfill(body=page_html, content_type="text/html"),
        )
        self.page.goto(self.origin + path)

    def settled(self, slot: str = "home-hero") -> str:
        """Wait until the slot has its answer (or kept its default); its state."""
        locator = self.page.locator(f'[data-persona-slot="{slot}"]').first
        self.page.wait_for_function(
            "el => ['done', 'timeout'].includes(el.getAttribute('data-persona-state'))",
            arg=locator.element_handle(),
            timeout=TIMEOUT_MS + 5000,
        )
        return str(locator.get_attribute("data-persona-state"))

    def events(self) -> list[dict[str, Any]]:
        """Every event the page sent, in order (after flushing the queue)."""
        self.page.evaluate("Persona.flush()")
        self.page.wait_for_timeout(300)
        return [e for path, _, body in self.calls if path == "/v1/events" for e in body["events"]]

    def decisions(self) -> list[tuple[dict[str, str], Any]]:
        return [(h, body) for path, h, body in self.calls if path == "/v1/decide"]

    def close(self) -> None:
        self.context.close()


def slot(name: str = "home-hero", default: str = "Welcome to our shop") -> str:
    return (
        f'<section class="slot" data-persona-slot="{name}" data-persona-template="tpl">'
        f"<h2>{default}</h2><p>Our default content.</p><div data-persona-why></div></section>"
    )

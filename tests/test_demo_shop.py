"""The demo shop in a real browser: personalization through persona.js, as a site uses it.

Debian's chromium driven by Playwright, against the service as a real process
with the demo catalog, exploration and holdout switched off so every answer is
the model's (they have tests of their own). Set PERSONA_UPDATE_SCREENSHOTS=1 to
refresh the screenshots in docs/img/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

from service.settings import DEFAULT_CATALOG, REPO_DIR
from tests.conftest import process_env
from tests.sdk_pages import wait_until
from tests.served import Served, served

TRAIL_RUNNING = [
    "/demo/c/running?tag=trail",
    "/demo/p/trail-runner-gtx",
    "/demo/p/ridge-trail-vest",
    "/demo/c/running?tag=trail",
]
HIKING = ["/demo/c/hiking", "/demo/p/summit-boot", "/demo/p/carbon-poles", "/demo/c/hiking"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("shop")
    catalog = orjson.loads(DEFAULT_CATALOG.read_bytes())
    for placement in catalog["placements"]:
        placement["explore_share"] = placement["holdout_share"] = 0.0
    (tmp / "catalog.json").write_bytes(orjson.dumps(catalog))
    env = {
        **process_env(tmp),
        "PERSONA_CATALOG": str(tmp / "catalog.json"),
        "PERSONA_DECIDE_DEADLINE_MS": "1000",
        "PERSONA_REDIS_TIMEOUT_MS": "500",
    }
    with served(env, tmp, ["config:read"]) as s:
        yield s


class Visitor:
    """One person in their own browser profile."""

    def __init__(self, browser: Browser, shop: Served) -> None:
        self.origin = f"http://127.0.0.1:{shop.port}"
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page: Page = self.context.new_page()
        self.calls: list[tuple[str, dict[str, str], Any]] = []
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "request",
            lambda r: (
                self.calls.append(
                    (
                        r.url[len(self.origin) :],
                        r.headers,
                        orjson.loads(r.post_data) if r.post_data else None,
                    )
                )
                if "/v1/" in r.url
                else None
            ),
        )

    def visit(self, path: str) -> None:
        self.page.goto(self.origin + path)
        for slot in self.page.locator("[data-persona-slot]").all():
            expect(slot).to_have_attribute("data-persona-state", "done")

    def shown(self, slot: str) -> tuple[str | None, str | None]:
        """The variant a slot shows and the policy that chose it."""
        el = self.page.locator(f'[data-persona-slot="{slot}"]')
        return el.get_attribute("data-persona-variant"), el.get_attribute("data-persona-policy")

    def consent(self, yes: bool) -> None:
        expect(self.page.locator("#consent-banner")).to_be_visible()
        self.page.get_by_role("button", name="Personalize" if yes else "No thanks").click()
        expect(self.page.locator("#consent-banner")).to_be_hidden()
        for slot in self.page.locator("[data-persona-slot]").all():
            expect(slot).to_have_attribute("data-persona-state", "done")

    def cookie(self) -> bool:
        return any(c["name"] == "persona_vid" for c in self.context.cookies())

    def panel(self) -> str:
        self.page.get_by_role("button", name="What Persona knows").click()
        body = self.page.locator("#panel-body")
        expect(body).not_to_have_text("Nothing yet.")
        return body.inner_text()

    def close(self) -> None:
        assert not self.errors, self.errors
        self.context.close()


def fresh_home(browser: Browser, shop: Served, consent: bool) -> dict[str, str | None]:
    """What a first-time visitor sees on the home page."""
    v = Visitor(browser, shop)
    v.visit("/demo/")
    v.consent(consent)
    shown = {slot: v.shown(slot)[0] for slot in ("home-hero", "sidebar-offer")}
    v.close()
    return shown


@pytest.mark.parametrize(
    ("pages", "sport"), [(TRAIL_RUNNING, "running"), (HIKING, "hiking")], ids=["trail", "hiking"]
)
def test_browsing_a_sport_turns_the_hero_and_the_offer_to_it(
    browser: Browser, shop: Served, pages: list[str], sport: str, tmp_path: Path
) -> None:
    first = fresh_home(browser, shop, consent=True)
    v = Visitor(browser, shop)
    v.visit("/demo/")
    v.consent(True)
    wait_until(v.cookie)  # set by the call the consent makes, which may still be on its way
    for path in pages:
        v.visit(path)
    v.visit("/demo/")
    assert v.shown("home-hero") == (f"hero-{sport}", "model")
    assert v.shown("sidebar-offer") == (f"offer-{sport}", "model")
    # the offer a first-time visitor gets is another one: this is the visitor's history
    assert first["sidebar-offer"] != f"offer-{sport}"
    expect(v.page.locator('[data-persona-slot="home-hero"] h2')).not_to_have_text(
        "Welcome to Summit Sports"
    )
    if sport == "hiking":
        v.page.screenshot(path=str(tmp_path / "demo-shop-personalized.png"))
    text = v.panel()
    assert sport in text and f"{len(pages) + 2} pages" in text
    if sport == "hiking":
        v.page.screenshot(path=str(tmp_path / "demo-shop-panel.png"))
        keep_screenshots(tmp_path)
    v.close()


def test_with_consent_refused_the_pages_stay_generic_and_nothing_personal_is_sent(
    browser: Browser, shop: Served, tmp_path: Path
) -> None:
    generic = fresh_home(browser, shop, consent=False)
    v = Visitor(browser, shop)
    v.visit("/demo/")
    v.page.screenshot(path=str(tmp_path / "demo-shop-consent.png"))
    v.consent(False)
    for path in TRAIL_RUNNING:
        v.visit(path)
    v.visit("/demo/")
    assert {slot: v.shown(slot)[0] for slot in generic} == generic
    assert not v.cookie()
    events = [e for path, _, body in v.calls if path == "/v1/events" for e in body["events"]]
    assert [e["type"] for e in events] == ["consent"]  # the refusal itself, nothing else
    assert events[0]["personalization"] is False
    for path, headers, body in v.calls:
        if path == "/v1/decide":
            assert "url" not in body["context"] and "referrer" not in body["context"]
            assert headers.get("x-persona-consent") in (None, "none")
    assert "personalization is off" in v.panel()
    keep_screenshots(tmp_path)
    v.close()


def test_an_order_from_the_cart_is_a_conversion_in_the_profile(
    browser: Browser, shop: Served
) -> None:
    v = Visitor(browser, shop)
    v.visit("/demo/p/grip-mat")
    v.consent(True)
    v.page.get_by_role("button", name="Add to cart").click()
    expect(v.page.locator("#cart-count")).to_have_text("1")
    v.visit("/demo/cart")
    expect(v.page.locator("#cart-total")).to_have_text("Total: $59")
    v.page.get_by_role("button", name="Place order").click()
    expect(v.page.locator("#ordered")).to_contain_text("Thank you")
    expect(v.page.locator("#cart-count")).to_have_text("0")
    v.page.wait_for_timeout(500)
    assert "1 ($59)" in v.panel()
    v.close()


def keep_screenshots(folder: Path) -> None:
    """Copy the screenshots to docs/img when asked to refresh them."""
    if os.environ.get("PERSONA_UPDATE_SCREENSHOTS") == "1":
        for shot in folder.glob("demo-shop-*.png"):
            shutil.copy(shot, REPO_DIR / "docs" / "img" / shot.name)

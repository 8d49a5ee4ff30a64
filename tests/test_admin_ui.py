"""The marketer workspace in a real browser: Debian's chromium driven by Playwright.

Set PERSONA_UPDATE_SCREENSHOTS=1 to refresh the screenshots in docs/img/.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from loadtests.browser import CHROMIUM, FLAGS
from service.settings import REPO_DIR
from tests.conftest import SERVER
from tests.served import Served, served


@pytest.fixture
def service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    """The service on a private Redis, and an admin token for the workspace."""
    with served(service_env, tmp_path, ["config:read", "config:write", "publish"]) as s:
        yield s


def decide_title(port: int) -> str | None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/decide",
        data=orjson.dumps({"placements": ["spring-sale"], "context": {"device": "mobile"}}),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        content = orjson.loads(r.read())["decisions"]["spring-sale"]["content"]
    return None if content is None else str(content["title"])


def post_impressions(port: int, n: int) -> None:
    """``n`` impressions of hero-running and one click, as a page would send them."""
    events = [
        {
            "type": "impression",
            "event_id": f"ui-impression-{i:04d}",
            "visitor_id": f"ui-visitor-{i:011d}",
            "decision_id": f"{i:027x}",
            "placement": "home-hero",
            "variant_id": "hero-running",
        }
        for i in range(n)
    ]
    events.append({**events[0], "type": "click", "event_id": "ui-click-0000"})
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/events",
        data=orjson.dumps({"events": events}),
        method="POST",
        headers={"X-Persona-Consent": "personalization,analytics", **SERVER},
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 202


def save_variant(page: Page, vid: str, title: str, rule: str = "") -> None:
    page.fill("#v-id", vid)
    page.fill("#v-category", "running")
    page.fill("#v-content", orjson.dumps({"title": title, "link": f"/{vid}"}).decode())
    page.fill("#v-rule", rule)
    page.click("#variant-form button[type=submit]")


def test_a_marketer_builds_previews_and_publishes_a_slot(service: Served, tmp_path: Path) -> None:
    port, token = service.port, service.token
    shots = tmp_path / "shots"
    shots.mkdir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        post_impressions(port, 5)
        page.goto(f"http://127.0.0.1:{port}/admin")
        page.get_by_label("Admin token").fill("pst_" + "x" * 43)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#token-error")).to_have_text("That token is not valid.")
        page.get_by_label("Admin token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#who")).to_contain_text("Signed in as e2e")
        results = page.locator("#stats-list tr", has_text="hero-running")
        expect(results).to_contain_text("5")  # impressions from the event log
        expect(results).to_contain_text("20.0 %")  # one click in five

        page.get_by_role("button", name="Audiences").click()
        page.get_by_label("Audience name").fill("mobile-fans")
        page.get_by_label("Condition (JSON)").fill('{"device": "mobile"}')
        page.get_by_role("button", name="Save audience").click()
        expect(page.locator("#status")).to_contain_text("Saved audience mobile-fans")

        page.get_by_role("button", name="Variants").click()
        # a rule naming a fact that does not exist: the error sits under the rule field
        save_variant(page, "spring-a", "Spring A", '{"visit": {"$gte": 3}}')
        expect(page.locator("#err-v-rule")).to_contain_text("unknown fact 'visit'")
        expect(page.locator("#v-rule")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#err-v-content")).to_have_text("")
        page.screenshot(path=str(shots / "admin-variant-error.png"), full_page=True)
        save_variant(page, "spring-a", "Spring A", '{"$audience": "mobile-fans"}')
        expect(page.locator("#status")).to_contain_text("Saved variant spring-a")
        save_variant(page, "spring-b", "Spring B")
        expect(page.locator("#status")).to_contain_text("Saved variant spring-b")
        save_variant(page, "spring-c", "Spring C")
        expect(page.locator("#status")).to_contain_text("Saved variant spring-c")

        page.get_by_role("button", name="Placements").click()
        page.fill("#p-name", "spring-sale")
        page.fill("#p-variants", "spring-a, spring-b, spring-c")
        page.fill("#p-default", "spring-z")
        page.click("#placement-form button[type=submit]")
        expect(page.locator("#err-p-default_variant")).to_contain_text("not among its variants")
        page.fill("#p-default", "spring-c")
        page.click("#placement-form button[type=submit]")
        expect(page.locator("#status")).to_contain_text("Saved placement spring-sale")
        expect(page.locator("#placements-list")).to_contain_text("spring-a, spring-b, spring-c")
        page.screenshot(path=str(shots / "admin-placements.png"), full_page=True)

        page.get_by_role("button", name="Preview").click()
        page.select_option("#pv-placement", "spring-sale")
        page.select_option("#pv-device", "desktop")
        page.get_by_role("button", name="Preview the draft").click()
        expect(page.locator("#preview-choice")).to_contain_text("new visitor")
        expect(page.locator("#preview-result")).to_contain_text("rule")  # spring-a: mobile only
        page.screenshot(path=str(shots / "admin-preview.png"), full_page=True)

        assert decide_title(port) is None  # the draft is not served
        page.get_by_role("button", name="Versions").click()
        page.get_by_role("button", name="Publish the draft").click()
        expect(page.locator("#status")).to_contain_text("Published version")
        published = time.monotonic()
        title = decide_title(port)
        while title is None and time.monotonic() - published < 5:
            time.sleep(0.02)
            title = decide_title(port)
        assert title in {"Spring A", "Spring B", "Spring C"}
        assert time.monotonic() - published <= 1.0
        expect(page.locator("#versions-list")).to_contain_text("live")
        page.screenshot(path=str(shots / "admin-versions.png"), full_page=True)
        browser.close()
    if os.environ.get("PERSONA_UPDATE_SCREENSHOTS") == "1":
        for shot in shots.iterdir():
            shutil.copy(shot, REPO_DIR / "docs" / "img" / shot.name)

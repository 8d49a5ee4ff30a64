"""persona.js in a real browser (Debian's chromium, Playwright) against the service as a process.

Test pages are served at the service's own origin by Playwright's router, so the
SDK talks to the real ``/v1/decide`` and ``/v1/events``; the model, Redis and the
cookie are real. A few tests point the SDK at an address that refuses or never
answers, which is what a stopped or hung service looks like to a page.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import orjson
import pytest
from playwright.sync_api import Route

from service.local_redis import free_port
from service.sdk import Script
from service.settings import DEFAULT_CATALOG
from tests.helpers import doc_snippet
from tests.sdk_pages import (
    HERO_TEMPLATE,
    TIMEOUT_MS,
    Site,
    admin,
    decide_raw,
    html,
    sdk_service,
    slot,
    wait_until,
)
from tests.served import Served

XSS = {
    "title": '<img src=x onerror="window.__xss=1">',
    "body": "<script>window.__xss=2</script>",
    "link": "javascript:window.__xss=3",
    "cta": "Go",
    "note": "<b>bold</b>",
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One service for the module, with a slot whose variant carries an XSS payload."""
    tmp = tmp_path_factory.mktemp("sdk")
    with sdk_service(tmp, ["config:read", "config:write", "publish"]) as s:
        admin(s, "PUT", "/v1/admin/variants/xss-payload", {"category": "general", "content": XSS})
        admin(
            s,
            "PUT",
            "/v1/admin/placements/xss-slot",
            {"variants": ["xss-payload"], "default_variant": "xss-payload"},
        )
        admin(s, "POST", "/v1/admin/publish", {})
        wait_until(lambda: decide_raw(s, ["xss-slot"])["xss-slot"]["content"] is not None)
        yield s


def titles(placement: str) -> set[str]:
    """Every title a slot's variants may show (the service runs the demo catalog)."""
    doc = orjson.loads(DEFAULT_CATALOG.read_bytes())
    variants = {v["id"]: v["content"]["title"] for v in doc["variants"]}
    names = next(p["variants"] for p in doc["placements"] if p["name"] == placement)
    return {variants[v] for v in names}


def test_slots_render_from_the_sites_template_in_one_call_without_layout_shift(
    site: Site, service: Served
) -> None:
    body = slot("home-hero") + slot("sidebar-offer", "Free shipping") + HERO_TEMPLATE
    site.open(html(body, f"Persona.init({{consent: 'granted', timeoutMs: {TIMEOUT_MS}}});"))
    assert site.settled("home-hero") == "done" and site.settled("sidebar-offer") == "done"
    calls = site.decisions()
    assert len(calls) == 1  # one call for all slots of the page
    headers, body_sent = calls[0]
    assert sorted(body_sent["placements"]) == ["home-hero", "sidebar-offer"]
    assert headers["x-persona-consent"] == "personalization,analytics"
    for name in ("home-hero", "sidebar-offer"):
        shown = site.page.locator(f'[data-persona-slot="{name}"] h2').inner_text()
        decision = site.page.evaluate(f"Persona.decision('{name}')")
        policy = site.page.get_attribute(f'[data-persona-slot="{name}"]', "data-persona-policy")
        assert policy == decision["policy"]
        if policy in ("model", "explore"):
            assert shown == decision["content"]["title"] in titles(name)
    assert site.page.evaluate("window.__cls") == 0
    # the probe does see a shift: content pushed down by a growing element counts
    site.page.evaluate(
        "document.body.prepend(Object.assign(document.createElement('div'), "
        "{style: 'height: 120px'}))"
    )
    site.page.wait_for_timeout(200)
    assert site.page.evaluate("window.__cls") > 0


@pytest.mark.parametrize("failure", ["stopped", "hung"])
def test_a_stopped_or_hung_service_leaves_the_defaults_within_the_timeout(
    site: Site, failure: str
) -> None:
    if failure == "stopped":
        endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        listener = None
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # accepts connections, never answers
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    body = slot() + HERO_TEMPLATE
    started = time.monotonic()
    site.open(
        html(
            body,
            f"Persona.init({{endpoint: '{endpoint}', consent: 'granted', "
            f"timeoutMs: {TIMEOUT_MS}}});",
        )
    )
    assert site.settled() == "timeout"
    assert time.monotonic() - started < TIMEOUT_MS / 1000 + 3
    assert site.page.locator('[data-persona-slot="home-hero"] h2').inner_text() == (
        "Welcome to our shop"
    )
    assert site.page.evaluate("window.__cls") == 0
    assert site.page.evaluate("Persona.decision('home-hero')") is None
    if listener is not None:
        listener.close()


def test_consent_denied_sends_nothing_personal_and_sets_no_cookie(
    site: Site, service: Served
) -> None:
    body = slot() + HERO_TEMPLATE
    init = f"""Persona.init({{consent: 'denied', timeoutMs: {TIMEOUT_MS}}});
    Persona.page({{page_type: 'category', category: 'running', tags: ['trail']}});"""
    site.open(html(body, init))
    assert site.settled() == "done"
    site.page.evaluate("Persona.track('conversion', {value: 10})")
    assert site.events() == []
    headers, sent = site.decisions()[0]
    assert headers["x-persona-consent"] == "none"
    assert set(sent["context"]) <= {"page_type", "category", "local_hour", "day_of_week"}
    assert not [c for c in site.context.cookies() if c["name"] == "persona_vid"]


def test_consent_granted_then_withdrawn_deletes_the_cookie(site: Site) -> None:
    site.open(html(slot() + HERO_TEMPLATE, f"Persona.init({{timeoutMs: {TIMEOUT_MS}}});"))
    site.settled()
    assert site.decisions()[0][0].get("x-persona-consent") is None  # unknown: nothing withdrawn
    site.page.evaluate("Persona.consent({personalization: true, analytics: false})")
    assert [c for c in site.context.cookies() if c["name"] == "persona_vid"]
    grant = [e for e in site.events() if e["type"] == "consent"]
    assert grant and grant[-1]["personalization"] is True
    site.page.evaluate("Persona.consent({personalization: false, analytics: false})")
    assert not [c for c in site.context.cookies() if c["name"] == "persona_vid"]
    withdrawal = [
        (h, body)
        for path, h, body in site.calls
        if path == "/v1/events" and body["events"][0]["type"] == "consent"
    ][-1]
    assert withdrawal[0]["x-persona-consent"] == "none"
    assert withdrawal[1]["events"][0]["personalization"] is False
    # remembered: the next page of the site starts with the refusal
    site.open(html(slot() + HERO_TEMPLATE, "Persona.init({});"), "/site/next")
    assert site.page.evaluate("Persona.consentState()") == {
        "personalization": False,
        "analytics": False,
    }


def test_a_consent_manager_drives_consent_through_a_callback(site: Site) -> None:
    init = """
    window.cmpListeners = [];
    Persona.init({timeoutMs: 5000, consent: (update) => window.cmpListeners.push(update)});
    """
    site.open(html(slot() + HERO_TEMPLATE, init))
    site.page.wait_for_timeout(300)
    assert site.decisions() == []  # the first decision waits for the consent manager
    site.page.evaluate("window.cmpListeners.forEach(f => f({personalization: true}))")
    site.settled()
    assert site.decisions()[0][0]["x-persona-consent"] == "personalization"
    assert [c for c in site.context.cookies() if c["name"] == "persona_vid"]


def test_an_impression_is_sent_only_once_the_slot_has_been_visible_for_a_second(
    site: Site,
) -> None:
    body = '<div style="height: 3000px">spacer</div>' + slot() + HERO_TEMPLATE
    site.open(html(body, f"Persona.init({{consent: 'granted', timeoutMs: {TIMEOUT_MS}}});"))
    site.settled()
    site.page.wait_for_timeout(1500)
    assert [e for e in site.events() if e["type"] == "impression"] == []
    site.page.locator('[data-persona-slot="home-hero"]').scroll_into_view_if_needed()
    site.page.wait_for_timeout(400)  # visible, but not yet for a second
    assert [e for e in site.events() if e["type"] == "impression"] == []
    site.page.wait_for_timeout(1200)
    impressions = [e for e in site.events() if e["type"] == "impression"]
    decision = site.page.evaluate("Persona.decision('home-hero')")
    assert len(impressions) == 1
    assert impressions[0]["decision_id"] == decision["decision_id"]
    assert impressions[0]["variant_id"] == decision["variant_id"]
    assert impressions[0]["placement"] == "home-hero"
    site.page.wait_for_timeout(1200)
    assert len([e for e in site.events() if e["type"] == "impression"]) == 1  # once


def test_a_click_on_a_slot_link_carries_its_decision_id(site: Site) -> None:
    body = (
        '<section class="slot" data-persona-slot="home-hero" data-persona-template="tpl">'
        '<h2>Default</h2><a href="#more">More</a></section>'
        '<template id="tpl"><h2 data-persona-text="title"></h2><a href="#more">More</a></template>'
    )
    site.open(html(body, f"Persona.init({{consent: 'granted', timeoutMs: {TIMEOUT_MS}}});"))
    site.settled()
    decision = site.page.evaluate("Persona.decision('home-hero')")
    site.page.locator('[data-persona-slot="home-hero"] a').first.click()
    clicks = [e for e in site.events() if e["type"] == "click"]
    assert clicks and clicks[0]["decision_id"] == decision["decision_id"]
    assert clicks[0]["variant_id"] == decision["variant_id"]


def test_a_503_is_retried_once_with_the_same_event_ids(site: Site, service: Served) -> None:
    answered: list[int] = []

    def flaky(route: Route) -> None:
        if not answered:
            answered.append(503)
            route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body='{"error": "unavailable", "message": "try again"}',
            )
        else:
            answered.append(0)
            route.continue_()

    # the slot stays out of sight: no impression joins the batch under test
    body = '<div style="height: 3000px"></div>' + slot() + HERO_TEMPLATE
    site.open(html(body, "Persona.init({consent: 'granted'});"))
    site.settled()
    site.page.route(site.origin + "/v1/events", flaky)
    site.page.evaluate(
        "Persona.page({page_type: 'category', category: 'yoga'}); "
        "Persona.track('conversion', {value: 5, currency: 'EUR'}); Persona.flush()"
    )
    site.page.wait_for_timeout(2500)
    batches = [body["events"] for path, _, body in site.calls if path == "/v1/events"]
    assert answered == [503, 0] and len(batches) == 2
    assert [e["event_id"] for e in batches[0]] == [e["event_id"] for e in batches[1]]
    me = site.page.evaluate("Persona.me()")
    assert me["known"] and me["profile"]["orders"] == 1  # the retry was stored, once


def test_variant_content_is_text_unless_the_template_marks_a_field_trusted(site: Site) -> None:
    template = """<template id="tpl">
      <h2 data-persona-text="title"></h2><p data-persona-text="body"></p>
      <a id="cta" data-persona-attr="href:link; onclick:title; style:title"
         data-persona-text="cta"></a>
      <div id="trusted" data-persona-html="note"></div></template>"""
    body = slot("xss-slot") + template
    site.open(html(body, f"Persona.init({{consent: 'granted', timeoutMs: {TIMEOUT_MS}}});"))
    assert site.settled("xss-slot") == "done"
    site.page.wait_for_timeout(300)
    root = site.page.locator('[data-persona-slot="xss-slot"]')
    assert root.locator("h2").inner_text() == XSS["title"]
    assert root.locator("p").inner_text() == XSS["body"]
    assert root.locator("img, script").count() == 0
    cta = root.locator("#cta")
    assert cta.get_attribute("href") is None  # javascript: is not a link
    assert cta.get_attribute("onclick") is None and cta.get_attribute("style") is None
    cta.dispatch_event("click")
    assert site.page.evaluate("window.__xss") is None
    assert root.locator("#trusted b").inner_text() == "bold"  # marked trusted: HTML


def test_refresh_after_a_route_change_decides_again_with_the_new_page(site: Site) -> None:
    init = f"""Persona.init({{consent: 'granted', timeoutMs: {TIMEOUT_MS}}});
    Persona.page({{page_type: 'home'}});"""
    site.open(html(slot() + HERO_TEMPLATE, init))
    site.settled()
    first = site.page.evaluate("Persona.decision('home-hero')")
    site.page.evaluate(
        """history.pushState({}, '', '/site/running');
        Persona.page({page_type: 'category', category: 'running'});
        Persona.refresh();"""
    )
    site.page.wait_for_function(
        f"Persona.decision('home-hero') && "
        f"Persona.decision('home-hero').decision_id !== '{first['decision_id']}'"
    )
    contexts = [body["context"] for _, body in site.decisions()]
    assert contexts[0]["page_type"] == "home"
    assert contexts[-1]["page_type"] == "category" and contexts[-1]["category"] == "running"
    assert contexts[-1]["url"].endswith("/site/running")
    views = [e for e in site.events() if e["type"] == "view"]
    assert [v["path"] for v in views] == ["/site/page", "/site/running"]


def test_slots_added_later_are_picked_up(site: Site) -> None:
    site.open(
        html(HERO_TEMPLATE, f"Persona.init({{consent: 'granted', timeoutMs: {TIMEOUT_MS}}});")
    )
    site.page.wait_for_timeout(300)
    assert site.decisions() == []
    site.page.evaluate(
        f"document.body.insertAdjacentHTML('afterbegin', {orjson.dumps(slot()).decode()})"
    )
    assert site.settled() == "done"
    assert site.decisions()[0][1]["placements"] == ["home-hero"]


def test_the_feedback_widget_works_from_the_keyboard_and_sends_the_decision_id(
    site: Site,
) -> None:
    body = (
        slot()
        + '<div data-persona-feedback="home-hero" data-persona-label="Was this useful?"></div>'
        + HERO_TEMPLATE
    )
    site.open(html(body, f"Persona.init({{consent: 'granted', timeoutMs: {TIMEOUT_MS}}});"))
    site.settled()
    group = site.page.get_by_role("group", name="Was this useful?")
    assert group.get_by_role("button").count() == 7
    site.page.locator("body").focus()
    site.page.get_by_role("button", name="6 of 7").focus()
    site.page.keyboard.press("Enter")
    assert site.page.get_by_role("status").inner_text() == "Thank you."
    assert site.page.get_by_role("button", name="6 of 7").get_attribute("aria-pressed") == "true"
    feedback = [e for e in site.events() if e["type"] == "feedback"]
    decision = site.page.evaluate("Persona.decision('home-hero')")
    assert feedback == [
        {
            "type": "feedback",
            "question_id": "relevance",
            "rating": 6,
            "decision_id": decision["decision_id"],
            "event_id": feedback[0]["event_id"],
        }
    ]


def test_why_am_i_seeing_this_says_the_policy_in_plain_words(site: Site) -> None:
    template = HERO_TEMPLATE.replace("</template>", "<div data-persona-why></div></template>")
    site.open(
        html(slot() + template, f"Persona.init({{consent: 'granted', timeoutMs: {TIMEOUT_MS}}});")
    )
    site.settled()
    policy = site.page.evaluate("Persona.decision('home-hero').policy")
    site.page.get_by_role("button", name="Why am I seeing this?").click()
    dialog = site.page.get_by_role("dialog", name="Why am I seeing this?")
    text = dialog.locator("p").inner_text()
    expected = {
        "model": "from what you looked at",
        "explore": "something different to learn",
        "holdout": "small group of visitors",
        "fallback": "Standard content",
    }[policy]
    assert expected in text
    dialog.get_by_role("button", name="Close").click()
    assert site.page.get_by_role("dialog").count() == 0


def test_the_documented_snippets_run(site: Site) -> None:
    page = doc_snippet("docs/sdk.md", "page").replace("https://persona.example.com", site.origin)
    site.open(f"<!doctype html><html><head></head><body>{page}</body></html>")
    assert site.settled() == "done"  # the browser accepted the documented integrity hash
    assert site.page.evaluate("Persona.decision('home-hero')") is not None
    with site.page.expect_response(lambda r: r.url.endswith("/v1/events")) as sent:
        site.page.evaluate(doc_snippet("docs/events.md", "send"))
    assert sent.value.status == 202
    assert orjson.loads(sent.value.body())["accepted"] == 1


def test_the_served_script_is_checked_by_its_integrity_hash(site: Site) -> None:
    script = Script.load()
    page = f"""<!doctype html><html><head>
    <script src="/sdk/v1/persona.js" integrity="{script.integrity}"
            crossorigin="anonymous"></script>
    </head><body><script>document.title = typeof Persona;</script></body></html>"""
    site.open(page)
    assert site.page.title() == "object"
    wrong = page.replace(script.integrity, "sha384-" + "A" * 64)
    site.page.unroute_all()
    site.errors.clear()
    console: list[str] = []
    site.page.on("console", lambda m: console.append(m.text))
    site.open(wrong, "/site/wrong")
    assert site.page.title() == "undefined"  # the browser refused the altered script
    assert any("integrity" in m for m in console), console

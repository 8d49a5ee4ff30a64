"""persona.js and the page's own life in a real browser: hidden and styled slots, slots
moved, removed, added or named twice, and events too large for one request.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from tests.sdk_pages import HERO_TEMPLATE, Site, html, sdk_service, slot
from tests.served import Served

GRANTED = "Persona.init({consent: 'granted'});"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("sdk-lifecycle")
    with sdk_service(tmp, ["config:read"]) as s:
        yield s


def style_of(site: Site, prop: str, selector: str = '[data-persona-slot="home-hero"]') -> str:
    return str(site.page.evaluate(f"document.querySelector('{selector}').style.{prop}"))


def test_a_slot_decided_while_hidden_is_not_held_at_zero_height(site: Site) -> None:
    styled = slot().replace('class="slot"', 'class="slot" style="box-sizing: border-box"')
    body = '<div id="panel" hidden>' + styled + "</div>" + HERO_TEMPLATE
    site.open(html(body, GRANTED))
    assert site.settled() == "done"
    site.page.evaluate("document.getElementById('panel').hidden = false")
    assert style_of(site, "height") == ""
    height = site.page.evaluate(
        "document.querySelector('[data-persona-slot]').getBoundingClientRect().height"
    )
    assert height > 100  # its content's (and its CSS min-height's) size


def test_the_sites_inline_styles_come_back_when_the_viewport_changes(site: Site) -> None:
    body = slot().replace('class="slot"', 'class="slot" style="height: 300px"') + HERO_TEMPLATE
    site.open(html(body, GRANTED))
    site.settled()
    site.page.set_viewport_size({"width": 900, "height": 700})
    site.page.wait_for_timeout(200)
    assert style_of(site, "height") == "300px" and style_of(site, "overflowY") == ""


def test_a_horizontally_scrolling_slot_still_scrolls(site: Site) -> None:
    template = (
        '<template id="tpl"><div style="width: 3000px"><h2 data-persona-text="title"></h2>'
        "</div></template>"
    )
    body = slot().replace('class="slot"', 'class="slot" style="overflow-x: auto"') + template
    site.open(html(body, GRANTED))
    site.settled()
    scrolled = site.page.evaluate(
        """() => { const el = document.querySelector('[data-persona-slot]');
        el.scrollLeft = 500; return el.scrollLeft; }"""
    )
    assert scrolled == 500


def test_a_moved_slot_keeps_its_decision_and_a_removed_one_sends_no_impression(
    site: Site,
) -> None:
    body = '<div id="a"></div><div id="b"></div>' + slot() + slot("sidebar-offer") + HERO_TEMPLATE
    site.open(html(body, GRANTED))
    site.settled()
    site.settled("sidebar-offer")
    site.page.evaluate(
        "document.getElementById('b').append(document.querySelector('[data-persona-slot=home-hero]'))"
    )
    site.page.wait_for_timeout(100)
    decision = site.page.evaluate("Persona.decision('home-hero')")
    assert decision is not None
    site.page.evaluate("document.querySelector('[data-persona-slot=sidebar-offer]').remove()")
    site.page.wait_for_timeout(1500)
    impressions = {e["placement"] for e in site.events() if e["type"] == "impression"}
    assert impressions == {"home-hero"}  # the removed slot was on screen for < 1 s
    before = len(site.decisions())
    site.page.evaluate("Persona.refresh()")
    assert site.decisions()[before:][0][1]["placements"] == ["home-hero"]


def test_feedback_in_content_added_later_is_rendered(site: Site) -> None:
    site.open(html(slot() + HERO_TEMPLATE, GRANTED))
    site.settled()
    site.page.evaluate(
        """document.body.insertAdjacentHTML('beforeend',
        '<section><div data-persona-feedback="home-hero"></div></section>')"""
    )
    assert site.page.get_by_role("group").get_by_role("button").count() == 7


def test_one_impression_per_decision_when_a_slot_name_appears_twice(site: Site) -> None:
    site.open(html(slot() + slot() + HERO_TEMPLATE, GRANTED))
    site.settled()
    site.page.wait_for_timeout(1500)
    impressions = [e for e in site.events() if e["type"] == "impression"]
    assert len(impressions) == 1


def test_events_too_large_for_one_request_go_in_several(site: Site) -> None:
    site.open(html(slot() + HERO_TEMPLATE, GRANTED))
    site.settled()
    answers: list[dict[str, int]] = []
    site.page.on(
        "response",
        lambda r: answers.append(orjson.loads(r.body())) if r.url.endswith("/v1/events") else None,
    )
    # twenty views of about 4 KB each: over the API's 64 KiB body limit as one batch
    site.page.evaluate(
        """const long = 'https://shop.example/' + 'p'.repeat(2000);
        for (let i = 0; i < 20; i++) Persona.track('view', {url: long + i, referrer: long});"""
    )
    site.page.wait_for_timeout(1500)
    assert len(answers) >= 2 and sum(a["accepted"] for a in answers) == 20

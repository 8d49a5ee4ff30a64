"""persona.js and consent in a real browser: proof of consent, withdrawals that stick
(retries, other tabs), consent managers that answer early, late or not at all, and one
visitor id per browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from playwright.sync_api import Page, Response, Route

from tests.sdk_pages import HERO_TEMPLATE, Site, html, sdk_service, slot
from tests.served import Served

GRANT = "{personalization: true, analytics: true}"
REFUSE = "{personalization: false, analytics: false}"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("sdk-consent")
    with sdk_service(tmp, ["config:read"]) as s:
        yield s


def visitor_ids(site: Site) -> list[str]:
    """The visitor ids of the browser's cookie (none, or one)."""
    return [c["value"].split(".")[0] for c in site.context.cookies() if c["name"] == "persona_vid"]


def minted(responses: list[Response]) -> set[str]:
    """Every visitor id the service set in a cookie."""
    ids = set()
    for r in responses:
        cookie = r.header_value("set-cookie") or ""
        if cookie.startswith("persona_vid=") and not cookie.startswith('persona_vid=""'):
            ids.add(cookie.split("=", 1)[1].split(".")[0])
    return ids


def sent_events(calls: list[tuple[str, dict[str, str], Any]]) -> list[tuple[str, str]]:
    """(event type, consent header) of every event sent."""
    return [
        (e["type"], headers.get("x-persona-consent", ""))
        for path, headers, body in calls
        if path == "/v1/events"
        for e in body["events"]
    ]


def test_consent_is_recorded_without_a_configured_policy_version(site: Site) -> None:
    site.open(html(slot() + HERO_TEMPLATE, "Persona.init({});"))
    site.settled()
    with site.page.expect_response(lambda r: r.url.endswith("/v1/events")) as answer:
        site.page.evaluate(f"Persona.consent({GRANT})")
    assert answer.value.status == 202
    assert orjson.loads(answer.value.body())["accepted"] == 1


def test_a_retry_after_a_withdrawal_sends_nothing_personal(site: Site) -> None:
    refused: list[int] = []

    def flaky(route: Route) -> None:
        body = orjson.loads(route.request.post_data or "{}")
        if not refused and body["events"][0]["type"] == "view":
            refused.append(1)
            route.fulfill(status=503, headers={"Retry-After": "2"}, body="{}")
        else:
            route.continue_()

    site.page.route(site.origin + "/v1/events", flaky)
    init = f"Persona.init({{consent: {GRANT}}}); Persona.page({{page_type: 'home'}});"
    site.open(html('<div style="height: 3000px"></div>' + slot() + HERO_TEMPLATE, init))
    site.settled()
    site.page.evaluate("Persona.flush(); 0")  # the view gets a 503; its retry waits 2 s
    site.page.wait_for_timeout(300)
    before = len(site.calls)
    site.page.evaluate(f"Persona.consent({REFUSE})")
    site.page.wait_for_timeout(2500)  # past the retry
    after = sent_events(site.calls[before:])
    assert refused and after == [("consent", "none")]  # the view was not sent again
    assert visitor_ids(site) == []  # and no new visitor was made by it


def test_other_tabs_follow_a_withdrawal_and_a_grant(site: Site) -> None:
    page = html(slot() + HERO_TEMPLATE, "Persona.init({}); Persona.page({page_type: 'home'});")
    site.context.route(
        site.origin + "/site/*", lambda r: r.fulfill(body=page, content_type="text/html")
    )
    a = site.page
    a.goto(site.origin + "/site/a")
    a.evaluate(f"Persona.consent({GRANT})")
    b: Page = site.context.new_page()
    b_calls: list[tuple[str, dict[str, str], Any]] = []
    b.on(
        "request",
        lambda r: b_calls.append(
            (
                r.url[len(site.origin) :],
                r.headers,
                orjson.loads(r.post_data) if r.post_data else None,
            )
        ),
    )
    b.goto(site.origin + "/site/b")
    b.wait_for_function("Persona.decision('home-hero') !== null")
    a.evaluate(f"Persona.consent({REFUSE})")
    b.wait_for_function("Persona.consentState().personalization === false")
    b.evaluate("Persona.track('conversion', {value: 5}); Persona.flush()")
    b.wait_for_timeout(500)
    assert not [t for t, _ in sent_events(b_calls) if t != "consent"]
    assert visitor_ids(site) == []
    a.evaluate(f"Persona.consent({GRANT})")
    granted = visitor_ids(site)
    b.wait_for_function("Persona.consentState().personalization === true")
    b.evaluate("Persona.refresh()")
    assert visitor_ids(site) == granted != []  # B's next call keeps A's grant
    b.close()


def test_a_returning_visitors_view_is_sent_once_the_consent_manager_confirms(site: Site) -> None:
    site.page.add_init_script(f"localStorage.setItem('persona.consent', JSON.stringify({GRANT}))")
    init = f"""Persona.init({{consent: (update) => setTimeout(() => update({GRANT}), 200)}});
    Persona.page({{page_type: 'category', category: 'running'}});"""
    site.open(html(slot() + HERO_TEMPLATE, init))
    site.settled()
    assert [e["type"] for e in site.events()].count("view") == 1
    assert "consent" not in [e["type"] for e in site.events()]  # the same choice: not recorded


def test_a_consent_manager_that_answers_late_gets_the_page_decided_again(site: Site) -> None:
    init = "window.cmp = []; Persona.init({timeoutMs: 800, consent: (u) => window.cmp.push(u)});"
    site.open(html(slot() + HERO_TEMPLATE, init))
    assert site.settled() == "done"  # decided on the page's context after half the budget
    assert "x-persona-consent" not in site.decisions()[0][0]
    site.page.evaluate(f"window.cmp.forEach((update) => update({GRANT}))")
    site.page.wait_for_function("document.cookie !== null && Persona.decision('home-hero')")
    site.page.wait_for_timeout(500)
    headers = [h.get("x-persona-consent") for h, _ in site.decisions()]
    assert headers[-1] == "personalization,analytics" and len(headers) == 2
    assert visitor_ids(site)


@pytest.mark.parametrize("case", ["synchronous consent manager", "eleven slots"])
def test_one_browser_gets_one_visitor_id(site: Site, case: str) -> None:
    responses: list[Response] = []
    site.page.on("response", lambda r: responses.append(r) if "/v1/" in r.url else None)
    if case == "eleven slots":
        names = ["home-hero", "sidebar-offer", "article-footer"] + [f"x{i}" for i in range(8)]
        body = "".join(slot(n) for n in names) + HERO_TEMPLATE
        init = f"Persona.init({{consent: {GRANT}}}); Persona.page({{page_type: 'home'}});"
    else:
        body = slot() + HERO_TEMPLATE
        init = f"Persona.init({{policyVersion: 'v1', consent: (update) => update({GRANT})}});"
    site.open(html(body, init))
    site.settled()
    site.events()
    assert len(minted(responses)) == 1, minted(responses)
    assert visitor_ids(site) == list(minted(responses))

"""The service's log: JSON lines with request ids, and never a visitor's or customer's id.

A full workload (browser and server decisions, every event type, a login, a
withdrawal, what a visitor may read about themselves, bad input of every
kind) runs against two workers logging at debug level; then the log is
searched for every id the workload used.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from persona_client.login import cookie_visitor_id, login_token
from tests.conftest import API_KEY, SITE_SECRET
from tests.served import Running, running

pytestmark = pytest.mark.slow

VISITOR = "leakcheck-visitor-00000000001"
OTHER_VISITOR = "leakcheck-visitor-00000000002"
CUSTOMER = "leakcheck-customer-77"
LOGIN_CUSTOMER = "leakcheck-customer-88"
CONSENT = {"X-Persona-Consent": "personalization,analytics"}
SERVER = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Running]:
    with running(
        service_env,
        tmp_path,
        workers=2,
        PERSONA_LOG_LEVEL="debug",
        PERSONA_LOG_FORMAT="json",
        PERSONA_SITE_SECRETS=SITE_SECRET,
        PERSONA_CUSTOMER_ID_KEY="customer-key-" + "k" * 32,
    ) as r:
        yield r


def call(
    port: int,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def events(*items: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(items)}


def workload(port: int) -> list[str]:
    """Every kind of call; the ids that must not appear in the log."""
    status, headers, _ = call(port, "POST", "/v1/decide", {"placements": ["home-hero"]}, CONSENT)
    assert status == 200
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    cookie_value = cookie.split("=", 1)[1]
    browser_vid = cookie_visitor_id(cookie_value)
    assert browser_vid is not None
    browser = {**CONSENT, "Cookie": cookie}
    server = {**CONSENT, **SERVER}
    decided = orjson.loads(
        call(
            port,
            "POST",
            "/v1/decide",
            {"placements": ["home-hero", "sidebar-offer"], "visitor_id": VISITOR},
            server,
        )[2]
    )
    decision_id = decided["decisions"]["home-hero"]["decision_id"]
    variant = decided["decisions"]["home-hero"]["variant_id"]
    assert (
        call(port, "POST", "/v1/decide", {"placements": ["x"], "customer_id": CUSTOMER}, server)[0]
        == 200
    )
    assert (
        call(port, "GET", f"/v1/decide?placement=home-hero&visitor_id={VISITOR}", None, server)[0]
        == 200
    )
    now = time.time()
    batch = events(
        {"type": "view", "event_id": "leak-evt-0000000001", "visitor_id": VISITOR,
         "page_type": "category", "category": "running"},
        {"type": "impression", "event_id": "leak-evt-0000000002", "visitor_id": VISITOR,
         "decision_id": decision_id, "placement": "home-hero", "variant_id": variant},
        {"type": "click", "event_id": "leak-evt-0000000003", "visitor_id": VISITOR,
         "decision_id": decision_id, "placement": "home-hero", "variant_id": variant},
        {"type": "conversion", "event_id": "leak-evt-0000000004", "visitor_id": VISITOR,
         "value": 42.0, "order_id": "leak-order-1"},
        {"type": "feedback", "event_id": "leak-evt-0000000005", "visitor_id": VISITOR,
         "question_id": "useful", "rating": 6, "decision_id": decision_id},
        {"type": "identify", "event_id": "leak-evt-0000000006", "visitor_id": OTHER_VISITOR,
         "customer_id": CUSTOMER},
    )  # fmt: skip
    status, _, body = call(port, "POST", "/v1/events", batch, server)
    assert status == 202, body
    token = login_token(SITE_SECRET, LOGIN_CUSTOMER, browser_vid, now=now)
    login = events(
        {"type": "identify", "event_id": "leak-evt-0000000007", "customer_id": LOGIN_CUSTOMER,
         "signature": token},
        {"type": "view", "event_id": "leak-evt-0000000008", "page_type": "home"},
    )  # fmt: skip
    assert call(port, "POST", "/v1/events", login, browser)[0] == 202
    # a replayed token, a browser naming a visitor, a bad body: refused, and logged as refused
    replay = events(
        {"type": "identify", "event_id": "leak-evt-0000000009", "customer_id": LOGIN_CUSTOMER,
         "signature": token}
    )  # fmt: skip
    call(port, "POST", "/v1/events", replay, CONSENT)
    call(port, "POST", "/v1/decide", {"placements": ["home-hero"], "visitor_id": VISITOR}, CONSENT)
    call(
        port,
        "POST",
        "/v1/decide",
        raw=b'{"placements": ["home-hero"], "visitor_id": ',
        headers=server,
    )
    call(port, "POST", "/v1/decide", {"placements": ["home-hero"], "visitor_id": "short"}, server)
    call(port, "POST", "/v1/events", events({"type": "view", "visitor_id": VISITOR}), server)
    assert call(port, "GET", "/v1/me", None, browser)[0] == 200
    assert call(port, "GET", f"/v1/me?visitor_id={VISITOR}", None, server)[0] == 200
    assert call(port, "GET", f"/v1/me?customer_id={CUSTOMER}", None, server)[0] == 200
    withdraw = {"X-Persona-Consent": "none", "Cookie": cookie}
    assert call(port, "POST", "/v1/decide", {"placements": ["home-hero"]}, withdraw)[0] == 200
    return [VISITOR, OTHER_VISITOR, CUSTOMER, LOGIN_CUSTOMER, browser_vid, cookie_value, token]


def test_a_full_workload_logs_no_visitor_or_customer_id(service: Running) -> None:
    secrets = workload(service.port)
    service.proc.terminate()
    assert service.proc.wait(timeout=30) == 0
    text = service.log.read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    assert len(lines) > 10, text[:2000]
    records = [orjson.loads(ln) for ln in lines]
    assert {r["level"] for r in records} >= {"info", "debug"}
    assert any(r["logger"] == "persona.rejected" and "request_id" in r for r in records)
    for secret in secrets:
        assert secret not in text, f"{secret!r} is in the log"


def test_a_request_id_is_passed_through_or_minted_and_logged(service: Running) -> None:
    given = "edge-7f3a9c.42"
    status, headers, _ = call(
        service.port, "POST", "/v1/decide", raw=b"not json", headers={"X-Request-Id": given}
    )
    assert status == 400 and headers["X-Request-Id"] == given
    _, minted, _ = call(
        service.port, "POST", "/v1/decide", raw=b"[", headers={"X-Request-Id": "no spaces"}
    )
    assert minted["X-Request-Id"] != "no spaces" and len(minted["X-Request-Id"]) > 8
    _, other, _ = call(service.port, "POST", "/v1/decide", raw=b"[")
    assert other["X-Request-Id"] not in (minted["X-Request-Id"], given)
    deadline = time.monotonic() + 10
    while True:
        records = [
            orjson.loads(ln) for ln in service.log.read_text().splitlines() if ln.startswith("{")
        ]
        rejected = {r.get("request_id") for r in records if r["logger"] == "persona.rejected"}
        if {given, minted["X-Request-Id"]} <= rejected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {given, minted["X-Request-Id"], other["X-Request-Id"]} <= rejected

"""The OpenAPI document is valid, is what the code builds, covers exactly the app's routes,
and tells the truth: responses of the real app are validated against it (and
tests/test_schemathesis.py fuzzes the service against it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from service.app import create_app
from service.decide.types import Decision
from service.http.schemas import ContextBody, DecideBody
from service.metrics import FALLBACK_REASONS, POLICIES
from service.openapi import render
from service.settings import PACKAGE_DIR, Settings
from tests.helpers import catalog_without_randomness

SPEC: dict[str, Any] = orjson.loads((PACKAGE_DIR / "openapi.json").read_bytes())
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
HERO = b'{"placements": ["home-hero"]}'


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def test_document_is_valid_openapi_31() -> None:
    validate(SPEC)
    assert SPEC["openapi"].startswith("3.1")


def test_the_file_is_what_the_code_builds() -> None:
    """``python -m service.openapi`` rewrites it; this fails when someone forgot to."""
    assert (PACKAGE_DIR / "openapi.json").read_bytes() == render()


def test_every_route_is_documented_and_nothing_else() -> None:
    app = create_app(
        Settings(
            redis_url="redis://127.0.0.1:1/0",
            cookie_secrets=("x" * 32,),
            customer_id_key="k" * 32,
            site_secrets=("s" * 32,),
        )
    )
    routes = {
        (r.resource.canonical, r.method.lower())
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    documented_ops = {(path, method) for path, ops in SPEC["paths"].items() for method in ops}
    assert routes == documented_ops


def test_every_field_limit_of_the_request_structs_is_in_the_document() -> None:
    """The request schemas are the structs' own (msgspec), field for field."""
    for struct, name in ((DecideBody, "DecideRequest"), (ContextBody, "Context")):
        fields = {f.name for f in msgspec.structs.fields(struct)}
        assert set(SCHEMAS[name]["properties"]) == fields, name
        assert SCHEMAS[name]["additionalProperties"] is False
    visitor = SCHEMAS["DecideRequest"]["properties"]["visitor_id"]
    assert visitor["anyOf"][0]["pattern"] == "^[A-Za-z0-9_-]{16,64}$"
    assert "22 characters" in visitor["description"]
    assert SCHEMAS["Variant"]["properties"]["price_band"]["maximum"] == 3
    assert SCHEMAS["Placement"]["properties"]["variants"]["maxItems"] == 200


def test_decision_schema_matches_decision_to_json() -> None:
    schema = SCHEMAS["Decision"]
    assert set(schema["properties"]["policy"]["enum"]) == set(POLICIES)
    assert set(schema["properties"]["fallback"]["enum"]) == {None, *FALLBACK_REASONS}
    full = Decision(
        placement="p",
        decision_id="0" * 27,
        variant_id="v",
        content={},
        policy="model",
        fallback=None,
        propensity=0.9,
        model_version="m",
        scores=(("v", 0.5),),
        error="e",
        excluded=(("w", "rule"),),
        more=(("x", {}),),
    )
    minimal = dataclasses.replace(full, scores=None, error=None, excluded=(), more=())
    assert set(full.to_json()) == set(schema["properties"])
    assert set(minimal.to_json()) == set(schema["required"])


def assert_valid(instance: Any, schema: dict[str, Any]) -> None:
    validator = Draft202012Validator({**schema, "components": SPEC["components"]})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
    assert not errors, errors


async def assert_documented(resp: Any, path: str, method: str) -> Any:
    """The response's status and content type are documented, and its body fits."""
    responses = SPEC["paths"][path][method]["responses"]
    assert str(resp.status) in responses, (path, method, resp.status)
    documented_response = responses[str(resp.status)]
    if "content" not in documented_response:
        return None
    content_type = resp.headers["Content-Type"].split(";")[0]
    assert content_type in documented_response["content"], (path, method, content_type)
    if content_type != "application/json":
        return await resp.text()
    body = await resp.json()
    assert_valid(body, documented_response["content"]["application/json"]["schema"])
    for name, header in documented_response.get("headers", {}).items():
        header = _resolve(header, SPEC)
        if name in resp.headers and name != "Set-Cookie":
            assert_valid(resp.headers[name], header["schema"])
    return body


async def test_decide_responses_fit_the_document(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    # holdout off: a minted visitor would otherwise be held out (unscored) 5 % of the time
    settings = make_settings(catalog_path=catalog_without_randomness(tmp_path))
    client = await app_client(settings)
    both = {"placements": ["home-hero", "sidebar-offer", "no-such-slot"]}
    resp = await client.post("/v1/decide", data=orjson.dumps(both))
    answer = await assert_documented(resp, "/v1/decide", "post")
    assert "Set-Cookie" in resp.headers and "visitor_id" not in answer
    assert answer["decisions"]["no-such-slot"]["error"]
    refused = await client.post("/v1/decide", data=orjson.dumps({**both, "include_scores": True}))
    assert refused.status == 403
    await assert_documented(refused, "/v1/decide", "post")
    server = await app_client(settings, server=True)
    scored = {**both, "include_scores": True, "visitor_id": "documented-visitor-000000001"}
    resp = await server.post("/v1/decide", data=orjson.dumps(scored))
    answer = await assert_documented(resp, "/v1/decide", "post")
    assert "scores" in answer["decisions"]["home-hero"] and answer["visitor_id"]
    resp = await client.get("/v1/decide?placement=home-hero,sidebar-offer&device=mobile")
    await assert_documented(resp, "/v1/decide", "get")
    no_consent = await server.post("/v1/decide", data=HERO, headers={"X-Persona-Consent": "none"})
    assert (await assert_documented(no_consent, "/v1/decide", "post"))["visitor_id"] is None


@pytest.mark.parametrize(
    ("method", "target", "data", "headers", "code"),
    [
        ("post", "/v1/decide", b'{"placement": ["home-hero"]}', {}, "invalid_request"),
        ("post", "/v1/decide", b"nope", {}, "invalid_json"),
        ("post", "/v1/decide", HERO, {"X-Persona-Consent": "maybe"}, "invalid_consent"),
        (
            "post",
            "/v1/decide",
            b'{"placements": ["' + b"a" * 70_000 + b'"]}',
            {},
            "request_entity_too_large",
        ),
        ("get", "/v1/decide?placement=home-hero&colour=red", None, {}, "invalid_request"),
        (
            "get",
            "/v1/decide?placement=home-hero",
            None,
            {"X-Persona-Consent": ""},
            "invalid_consent",
        ),
        ("post", "/v1/events", b"nope", {}, "invalid_json"),
        ("post", "/v1/events", b'{"events": [{"type": "view"}]}', {}, "invalid_request"),
    ],
)
async def test_error_responses_fit_the_document(
    client: Any, method: str, target: str, data: bytes | None, headers: dict[str, str], code: Any
) -> None:
    resp = await client.request(method.upper(), target, data=data, headers=headers)
    assert resp.status >= 400
    body = await assert_documented(resp, target.split("?")[0], method)
    assert set(body) >= {"error", "message"}
    if code is not None:
        assert body["error"] == code


async def test_event_responses_fit_the_document(client: Any) -> None:
    view = {"type": "view", "event_id": "openapi-view-1", "page_type": "home"}
    bad = {"type": "view", "event_id": "openapi-view-2", "price_band": 9}
    resp = await client.post("/v1/events", data=orjson.dumps({"events": [view, bad]}))
    assert resp.status == 202
    result = await assert_documented(resp, "/v1/events", "post")
    assert [r["status"] for r in result["results"]] == ["accepted", "rejected"]


async def test_operations_responses_fit_the_document(
    client: Any, app_client: Any, make_settings: Any
) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/demo/", "/admin"):
        resp = await client.get(path)
        assert resp.status == 200, path
        await assert_documented(resp, path, "get")
    index = await client.get("/", allow_redirects=False)
    await assert_documented(index, "/", "get")
    assert index.headers["Location"] == "/demo/"
    for path, documented in (
        ("/demo/c/running", "/demo/c/{slug}"),
        ("/demo/p/grip-mat", "/demo/p/{item}"),
        ("/demo/cart", "/demo/cart"),
        ("/sdk/v1/persona.js", "/sdk/v1/persona.js"),
    ):
        await assert_documented(await client.get(path), documented, "get")
    missing = await client.get("/demo/p/no-such-thing")
    assert missing.status == 404
    await assert_documented(missing, "/demo/p/{item}", "get")
    me = await client.get("/v1/me")
    assert (await assert_documented(me, "/v1/me", "get"))["known"] is False
    down = await app_client(make_settings(redis_url="redis://127.0.0.1:1/0"))
    resp = await down.get("/readyz")
    assert resp.status == 503
    assert (await assert_documented(resp, "/readyz", "get"))["checks"]["redis"] is False
    decided = await down.post("/v1/decide", data=HERO)
    await assert_documented(decided, "/v1/decide", "post")


async def test_served_document_equals_the_file(client: Any) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert await resp.json() == SPEC

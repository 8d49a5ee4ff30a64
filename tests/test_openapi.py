"""The OpenAPI document is valid, covers exactly the app's routes, and tells the truth.

Request schemas are compared with the JSON Schema msgspec derives from the very
structs that validate requests; responses of the real app are validated against
the documented response schemas.
"""

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
from service.events.schemas import Envelope, Event
from service.http.schemas import ContextBody, DecideBody
from service.metrics import FALLBACK_REASONS, POLICIES
from service.settings import PACKAGE_DIR, Settings
from tests.helpers import catalog_without_randomness

SPEC: dict[str, Any] = orjson.loads((PACKAGE_DIR / "openapi.json").read_bytes())
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
HERO = b'{"placements": ["home-hero"]}'

# What the documents say about a value; descriptions, defaults and examples aside.
_CONSTRAINTS = (
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "uniqueItems",
)
_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number"}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def canonical(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """The validation-relevant content of a schema, in one spelling.

    msgspec writes an optional field as ``anyOf: [X, {type: null}]`` and a
    ``Literal`` as a bare ``enum``; the document writes ``type: [X, "null"]``
    and ``type: string, enum``. Python's ``\\Z`` is JSON Schema's ``$``.
    """
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        branches = [_resolve(b, root) for b in schema["anyOf"]]
        others = [b for b in branches if b != {"type": "null"}]
        assert len(branches) == 2 and len(others) == 1, schema
        inner = canonical(others[0], root)
        inner["type"] = sorted({*inner["type"], "null"})
        return inner
    raw_type = schema.get("type", [])
    types = set(raw_type) if isinstance(raw_type, list) else {raw_type}
    out: dict[str, Any] = {}
    enum = [schema["const"]] if "const" in schema else schema.get("enum")
    if enum is not None:
        if None in enum:
            types.add("null")
        values = [v for v in enum if v is not None]
        types |= {_JSON_TYPES[type(v)] for v in values}
        out["enum"] = sorted(values)
    out["type"] = sorted(types)
    for key in _CONSTRAINTS:
        if key in schema:
            value = schema[key]
            out[key] = value.replace("\\Z", "$") if key == "pattern" else value
    if "items" in schema:
        out["items"] = canonical(schema["items"], root)
    if "properties" in schema:
        out["properties"] = {k: canonical(v, root) for k, v in schema["properties"].items()}
        out["required"] = sorted(schema.get("required", []))
        out["additionalProperties"] = schema.get("additionalProperties", True)
    return out


def struct_schema(struct: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """msgspec's JSON Schema of ``struct``: (the schema, the root its refs point into)."""
    root = msgspec.json.schema(struct)
    return _resolve(root, root), root


def documented(name: str) -> dict[str, Any]:
    return canonical(SCHEMAS[name], SPEC)


def test_document_is_valid_openapi_31() -> None:
    validate(SPEC)
    assert SPEC["openapi"].startswith("3.1")


def test_every_route_is_documented_and_nothing_else() -> None:
    app = create_app(
        Settings(
            redis_url="redis://127.0.0.1:1/0",
            cookie_secrets=("x" * 32,),
            customer_id_key="k" * 32,
            site_secret="s" * 32,
        )
    )
    routes = {
        (r.resource.canonical, r.method.lower())
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    documented_ops = {(path, method) for path, ops in SPEC["paths"].items() for method in ops}
    assert routes == documented_ops


def test_request_property_names_are_the_struct_fields() -> None:
    for struct, name in ((DecideBody, "DecideRequest"), (ContextBody, "Context")):
        fields = {f.name for f in msgspec.structs.fields(struct)}
        assert set(SCHEMAS[name]["properties"]) == fields, name
        assert SCHEMAS[name]["additionalProperties"] is False
    assert SCHEMAS["DecideRequest"]["required"] == ["placements"]


def test_decide_request_schema_is_the_structs_schema() -> None:
    doc = documented("DecideRequest")
    placements = doc["properties"]["placements"]
    # Enforced by the handler, not the struct: the per-call limit (a setting that is
    # at most 100) and distinct names.
    assert placements.pop("maxItems") == 100 and placements.pop("uniqueItems") is True
    schema, root = struct_schema(DecideBody)
    assert doc == canonical(schema, root)
    context, root = struct_schema(ContextBody)
    assert documented("Context") == canonical(context, root)


def test_event_schemas_are_the_structs_schemas() -> None:
    schema, root = struct_schema(Envelope)
    expected = canonical(schema, root)
    del expected["properties"]["events"]["items"]  # kept raw, then decoded one by one
    batch = documented("EventBatch")
    del batch["properties"]["events"]["items"]
    assert batch == expected
    items = SCHEMAS["EventBatch"]["properties"]["events"]["items"]
    assert items == {"$ref": "#/components/schemas/Event"}
    union = msgspec.json.schema(Event)
    mapping = SCHEMAS["Event"]["discriminator"]["mapping"]
    assert (
        SCHEMAS["Event"]["discriminator"]["propertyName"] == union["discriminator"]["propertyName"]
    )
    assert set(mapping) == set(union["discriminator"]["mapping"])
    assert sorted(r["$ref"] for r in SCHEMAS["Event"]["oneOf"]) == sorted(mapping.values())
    for tag, ref in mapping.items():
        doc = canonical({"$ref": ref}, SPEC)
        assert doc == canonical({"$ref": union["discriminator"]["mapping"][tag]}, union), tag


def test_get_decide_query_parameters_are_the_body_fields() -> None:
    params = {p["name"]: p for p in SPEC["paths"]["/v1/decide"]["get"]["parameters"] if "name" in p}
    context_fields = {f.name for f in msgspec.structs.fields(ContextBody)}
    assert set(params) == {"placement", "visitor_id", "include_scores", *context_fields}
    context = documented("Context")["properties"]
    for name in context_fields:
        expected = dict(context[name], type=[t for t in context[name]["type"] if t != "null"])
        assert canonical(params[name]["schema"], SPEC) == expected, name
    consent = SPEC["components"]["parameters"]["Consent"]
    for path, method in (("/v1/decide", "get"), ("/v1/decide", "post"), ("/v1/events", "post")):
        refs = [p.get("$ref") for p in SPEC["paths"][path][method]["parameters"]]
        assert "#/components/parameters/Consent" in refs, (path, method)
    assert consent["name"] == "X-Persona-Consent" and consent["in"] == "header"


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


def test_request_examples_are_accepted_by_the_server() -> None:
    body = SPEC["paths"]["/v1/decide"]["post"]["requestBody"]["content"]["application/json"]
    msgspec.json.decode(orjson.dumps(body["example"]), type=DecideBody)
    assert_valid(body["example"], body["schema"])
    events = SPEC["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    for event in events["example"]["events"]:
        msgspec.json.decode(orjson.dumps(event), type=Event)
    assert_valid(events["example"], events["schema"])


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
    client = await app_client(make_settings(catalog_path=catalog_without_randomness(tmp_path)))
    both = {"placements": ["home-hero", "sidebar-offer", "no-such-slot"]}
    for body in (both, {**both, "include_scores": True}):
        resp = await client.post("/v1/decide", data=orjson.dumps(body))
        answer = await assert_documented(resp, "/v1/decide", "post")
        assert ("Set-Cookie" in resp.headers) is (body is both)  # minted once, then current
    assert "scores" in answer["decisions"]["home-hero"]
    assert answer["decisions"]["no-such-slot"]["error"]
    resp = await client.get("/v1/decide?placement=home-hero,sidebar-offer&device=mobile")
    await assert_documented(resp, "/v1/decide", "get")
    no_consent = await client.post("/v1/decide", data=HERO, headers={"X-Persona-Consent": "none"})
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
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/demo"):
        resp = await client.get(path)
        assert resp.status == 200, path
        await assert_documented(resp, path, "get")
    index = await client.get("/", allow_redirects=False)
    await assert_documented(index, "/", "get")
    assert index.headers["Location"] == "/demo"
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

"""The OpenAPI document is valid and matches the routes and request schema."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from openapi_spec_validator import validate

from service.app import create_app
from service.http.schemas import ContextBody, DecideBody
from service.settings import PACKAGE_DIR, Settings

SPEC: dict[str, Any] = orjson.loads((PACKAGE_DIR / "openapi.json").read_bytes())


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
    documented = {(path, method) for path, ops in SPEC["paths"].items() for method in ops}
    assert routes == documented


def test_request_schemas_match_the_structs() -> None:
    schemas = SPEC["components"]["schemas"]
    for struct, name in ((DecideBody, "DecideRequest"), (ContextBody, "Context")):
        fields = {f.name for f in msgspec.structs.fields(struct)}
        assert set(schemas[name]["properties"]) == fields, name
        assert schemas[name]["additionalProperties"] is False
    assert schemas["DecideRequest"]["required"] == ["placements"]


async def test_served_document_equals_the_file(client: Any) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert await resp.json() == SPEC

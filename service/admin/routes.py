"""The admin API under /v1/admin: the versioned configuration, publish and restore.

Item routes edit the draft: each change is validated as part of the whole
configuration and stored as a new version. A client may send ``If-Match:
<draft version>`` so that a change made on a stale view is refused (409)
rather than overwriting someone else's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import orjson
import yaml
from aiohttp import web

from service.admin.auth import principal, require
from service.admin.config import (
    ConfigConflict,
    ConfigError,
    ConfigStore,
    NoSuchVersion,
    Version,
    changes,
    validate,
)
from service.admin.documents import DocumentError, DocumentRefused, load_yaml
from service.admin.models import ModelError, ModelRegistry, UnknownModel
from service.admin.preview import PREVIEW_DECODER, preview
from service.admin.stats import variant_counts
from service.errors import ApiError
from service.events.archive_store import open_store
from service.features.profile import decode_profile
from service.http.body import read_body
from service.http.decide import context_from
from service.keys import ADMIN_REDIS, ENGINE, LIVE, SETTINGS
from service.store.keyspace import follow_alias

SECTIONS = {"placements": "name", "variants": "id"}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _store(request: web.Request) -> ConfigStore:
    return ConfigStore(request.app[ADMIN_REDIS])


async def _body(request: web.Request) -> Any:
    raw = await read_body(request, request.app[SETTINGS].http_body_timeout_s)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


def _expected(request: web.Request) -> int | None:
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    text = raw.strip().removeprefix("W/").strip('"')
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise ApiError(400, "invalid_request", "If-Match must be the draft's ETag (its version)")
    return int(text)


def _etag(number: int) -> dict[str, str]:
    """The draft version as the resource's ETag (send it back in If-Match)."""
    return {"ETag": f'"{number}"'}


async def _base(request: web.Request) -> tuple[dict[str, Any], int]:
    """The draft document and its number; before any change, the catalog file (version 0)."""
    draft = await _store(request).draft()
    if draft is not None:
        return draft.doc, draft.number
    doc = orjson.loads(request.app[SETTINGS].catalog_path.read_bytes())
    doc.setdefault("audiences", {})
    return doc, 0


async def _save(request: web.Request, doc: Any, message: str) -> web.Response:
    try:
        version = await _store(request).save(
            doc, principal(request).name, message, _expected(request)
        )
    except ConfigConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except ConfigError as exc:
        raise ApiError(422, "invalid_config", str(exc)) from None
    return _json(200, version.summary())


def _version_json(v: Version, live: int | None) -> dict[str, Any]:
    return {**v.summary(), "live": v.number == live}


@require("config:read")
async def get_config(request: web.Request) -> web.Response:
    """The draft configuration (export): a document ``PUT /v1/admin/config`` takes back.

    Its version is the ``ETag``; the published version is ``X-Persona-Live-Version``.
    ``?format=yaml`` answers it as a YAML file.
    """
    form = request.query.get("format", "json")
    if form not in ("json", "yaml"):
        raise ApiError(400, "invalid_request", "format must be json or yaml")
    doc, number = await _base(request)
    live = await _store(request).live()
    headers = {**_etag(number), "X-Persona-Live-Version": "" if live is None else str(live)}
    if form == "yaml":
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
        return web.Response(
            text=text,
            content_type="application/yaml",
            headers={
                **headers,
                "Content-Disposition": f'attachment; filename="persona-config-v{number}.yaml"',
            },
        )
    return _json(200, doc, headers)


@require("config:write")
async def put_config(request: web.Request) -> web.Response:
    """Replace the whole draft (import, JSON or YAML), validated as one document."""
    if request.content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
        raw = await read_body(request, request.app[SETTINGS].http_body_timeout_s)
        try:
            body = load_yaml(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError(400, "invalid_yaml", "the body is not UTF-8 text") from None
        except DocumentRefused as exc:
            raise ApiError(422, "invalid_config", str(exc)) from None
        except DocumentError as exc:
            raise ApiError(400, "invalid_yaml", str(exc)) from None
    else:
        body = await _body(request)
    return await _save(request, body, str(request.query.get("message", "import")))


def _items(section: str) -> Callable[[web.Request], Any]:
    key = SECTIONS.get(section)

    @require("config:read")
    async def list_items(request: web.Request) -> web.Response:
        doc, number = await _base(request)
        items = doc.get(section, {} if key is None else [])
        return _json(200, {"version": number, section: items})

    return list_items


def _item_routes(section: str) -> tuple[Any, Any, Any]:
    key = SECTIONS.get(section)  # None: audiences, a mapping of name -> rule

    def find(doc: dict[str, Any], name: str) -> Any:
        if key is None:
            return doc.get(section, {}).get(name)
        return next((d for d in doc.get(section, []) if d.get(key) == name), None)

    @require("config:read")
    async def get_item(request: web.Request) -> web.Response:
        doc, number = await _base(request)
        item = find(doc, request.match_info["name"])
        if item is None:
            raise ApiError(404, "not_found", f"no {section[:-1]} {request.match_info['name']!r}")
        return _json(200, item, _etag(number))

    @require("config:write")
    async def put_item(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        item = await _body(request)
        doc, _ = await _base(request)
        doc = dict(doc)
        if key is None:
            doc[section] = {**doc.get(section, {}), name: item}
        else:
            if not isinstance(item, dict):
                raise ApiError(422, "invalid_config", f"a {section[:-1]} must be an object")
            if item.setdefault(key, name) != name:
                raise ApiError(
                    422, "invalid_config", f"{key} {item[key]!r} differs from the URL's {name!r}"
                )
            rest = [d for d in doc.get(section, []) if d.get(key) != name]
            doc[section] = [*rest, item]
        return await _save(request, doc, f"put {section[:-1]} {name}")

    @require("config:write")
    async def delete_item(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        doc, _ = await _base(request)
        if find(doc, name) is None:
            raise ApiError(404, "not_found", f"no {section[:-1]} {name!r}")
        doc = dict(doc)
        if key is None:
            doc[section] = {k: v for k, v in doc.get(section, {}).items() if k != name}
        else:
            doc[section] = [d for d in doc.get(section, []) if d.get(key) != name]
        return await _save(request, doc, f"delete {section[:-1]} {name}")

    return get_item, put_item, delete_item


@require("config:read")
async def list_versions(request: web.Request) -> web.Response:
    """The version history, newest first."""
    store = _store(request)
    live = await store.live()
    history = await store.history()
    return _json(
        200, {"live": live, "versions": [_version_json(v, live) for v in reversed(history)]}
    )


async def _get_version(store: ConfigStore, raw: str) -> Version:
    try:
        return await store.get(int(raw))
    except (ValueError, NoSuchVersion):
        raise ApiError(404, "not_found", f"there is no version {raw!r}") from None


@require("config:read")
async def get_version(request: web.Request) -> web.Response:
    """One version with its document."""
    store = _store(request)
    v = await _get_version(store, request.match_info["n"])
    return _json(200, {**_version_json(v, await store.live()), "config": v.doc})


@require("config:read")
async def diff_versions(request: web.Request) -> web.Response:
    """What changed from version ``from`` to version ``to``."""
    store = _store(request)
    if "from" not in request.query or "to" not in request.query:
        raise ApiError(400, "invalid_request", "give both ?from=<version>&to=<version>")
    a = await _get_version(store, request.query["from"])
    b = await _get_version(store, request.query["to"])
    return _json(200, {"from": a.number, "to": b.number, "changes": changes(a.doc, b.doc)})


@require("config:write")
async def restore_version(request: web.Request) -> web.Response:
    """Append an earlier version's document as the new draft."""
    store = _store(request)
    v = await _get_version(store, request.match_info["n"])
    restored = await store.restore(v.number, principal(request).name)
    return _json(200, restored.summary())


@require("publish")
async def publish(request: web.Request) -> web.Response:
    """Make a version (default: the draft) live in every process."""
    store = _store(request)
    body = await _body(request) if request.can_read_body else {}
    number = body.get("version") if isinstance(body, dict) else None
    if number is None:
        draft = await store.draft()
        if draft is None:
            raise ApiError(409, "conflict", "nothing to publish: the draft has no version yet")
        number = draft.number
    if not isinstance(number, int):
        raise ApiError(422, "invalid_config", "version must be an integer")
    try:
        v = await store.publish(number)
    except NoSuchVersion as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except ConfigError as exc:
        raise ApiError(422, "invalid_config", str(exc)) from None
    return _json(200, {**v.summary(), "live": True})


async def _stored_profile(request: web.Request, visitor_id: str) -> dict[str, Any] | None:
    """The visitor's profile (following a device's link to its customer profile)."""
    client = request.app[ADMIN_REDIS]
    _, raw = await follow_alias(visitor_id, client.get)
    profile = decode_profile(raw)
    return None if profile is None or "alias" in profile else profile


@require("config:read")
async def post_preview(request: web.Request) -> web.Response:
    """What a visitor (stored, or described) would see in a slot of the draft or a version."""
    try:
        body = PREVIEW_DECODER.decode(
            await read_body(request, request.app[SETTINGS].http_body_timeout_s)
        )
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    store = _store(request)
    if body.version is not None:
        doc = (await _get_version(store, str(body.version))).doc
    else:
        doc, _ = await _base(request)
    try:
        _, catalog = validate(doc)
    except ConfigError as exc:
        raise ApiError(422, "invalid_config", str(exc)) from None
    profile: dict[str, Any] | None = body.profile
    if body.visitor_id is not None:
        if not principal(request).can("privacy"):
            raise ApiError(
                403,
                "forbidden",
                "previewing a stored visitor reads their personal data: it needs the "
                "'privacy' scope; describe a visitor with 'profile' instead",
            )
        profile = await _stored_profile(request, body.visitor_id)
    now = time.time()
    settings = request.app[SETTINGS]
    try:
        result = preview(
            catalog,
            body.placement,
            profile,
            body.visitor_id,
            context_from(body.context, request.headers.get("User-Agent", ""), now),
            request.app[LIVE].current.model,
            now,
            settings.affinity_half_life_s,
            settings.holdout_seed,
            body.decision_id or request.app[ENGINE].new_decision_id(now),
        )
    except KeyError:
        raise ApiError(
            404, "not_found", f"no placement {body.placement!r} in that version"
        ) from None
    return _json(200, result)


@require("config:read")
async def get_stats(request: web.Request) -> web.Response:
    """Impressions, clicks, CTR and conversions per variant over the last ``days`` (1-30)."""
    try:
        days = int(request.query.get("days", "1"))
    except ValueError:
        days = 0
    if not 1 <= days <= 30:
        raise ApiError(400, "invalid_request", "days must be a whole number from 1 to 30")
    since = time.time() - days * 86400
    url = request.app[SETTINGS].archive_url
    archive = open_store(url) if url is not None else None
    counts = await variant_counts(request.app[ADMIN_REDIS], since, archive=archive)
    return _json(200, {"days": days, "since": since, "placements": counts})


def _models_root(request: web.Request) -> Path:
    return request.app[SETTINGS].effective_cache_dir / "bundles"


@require("models")
async def list_models(request: web.Request) -> web.Response:
    """Registered models, newest first, and which is active."""
    registry = ModelRegistry(request.app[ADMIN_REDIS])
    return _json(
        200,
        {
            "active": await registry.active(),
            "shadow": await registry.shadow(),
            "models": await registry.list(),
        },
    )


def _model_error(exc: ModelError) -> ApiError:
    if isinstance(exc, UnknownModel):
        return ApiError(404, "not_found", str(exc))
    return ApiError(422, "invalid_model", str(exc))


@require("models")
async def activate_model(request: web.Request) -> web.Response:
    """Make a registered model active in every process (refused on a schema mismatch)."""
    try:
        bundle = await ModelRegistry(request.app[ADMIN_REDIS]).activate(
            request.match_info["version"], _models_root(request)
        )
    except ModelError as exc:
        raise _model_error(exc) from None
    return _json(200, {"active": bundle.manifest.version})


@require("models")
async def shadow_model(request: web.Request) -> web.Response:
    """Score a registered model in shadow on live traffic: logged with each decision, not shown."""
    try:
        await ModelRegistry(request.app[ADMIN_REDIS]).set_shadow(
            request.match_info["version"], _models_root(request)
        )
    except ModelError as exc:
        raise _model_error(exc) from None
    return _json(200, {"shadow": request.match_info["version"]})


@require("models")
async def stop_shadow(request: web.Request) -> web.Response:
    """Stop scoring in shadow."""
    await ModelRegistry(request.app[ADMIN_REDIS]).set_shadow(None, _models_root(request))
    return _json(200, {"shadow": None})


@require("models")
async def rollback_model(request: web.Request) -> web.Response:
    """Re-activate the model that was active before the current one."""
    try:
        bundle = await ModelRegistry(request.app[ADMIN_REDIS]).rollback(_models_root(request))
    except ModelError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return _json(200, {"active": bundle.manifest.version})


@require(None)
async def whoami(request: web.Request) -> web.Response:
    """The calling token's name and scopes."""
    p = principal(request)
    return _json(200, {"name": p.name, "scopes": sorted(p.scopes)})


def add_routes(app: web.Application) -> None:
    """Register every admin route."""
    r = app.router
    r.add_get("/v1/admin/whoami", whoami)
    r.add_get("/v1/admin/config", get_config)
    r.add_put("/v1/admin/config", put_config)
    for section in ("placements", "variants", "audiences"):
        get_item, put_item, delete_item = _item_routes(section)
        r.add_get(f"/v1/admin/{section}", _items(section))
        r.add_get(f"/v1/admin/{section}/{{name}}", get_item)
        r.add_put(f"/v1/admin/{section}/{{name}}", put_item)
        r.add_delete(f"/v1/admin/{section}/{{name}}", delete_item)
    r.add_get("/v1/admin/versions", list_versions)
    r.add_get("/v1/admin/versions/{n}", get_version)
    r.add_post("/v1/admin/versions/{n}/restore", restore_version)
    r.add_get("/v1/admin/diff", diff_versions)
    r.add_post("/v1/admin/publish", publish)
    r.add_post("/v1/admin/preview", post_preview)
    r.add_get("/v1/admin/stats", get_stats)
    r.add_get("/v1/admin/models", list_models)
    r.add_post("/v1/admin/models/{version}/activate", activate_model)
    r.add_post("/v1/admin/models/rollback", rollback_model)
    r.add_post("/v1/admin/models/{version}/shadow", shadow_model)
    r.add_delete("/v1/admin/models/shadow", stop_shadow)

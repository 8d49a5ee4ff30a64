"""The admin API's paths (admin tokens with scopes)."""

from __future__ import annotations

from service.admin.config import MAX_VERSION
from service.openapi.components import ref
from service.openapi.operations import (
    ADMIN,
    ETAG,
    ID,
    IF_MATCH,
    JSON,
    Schema,
    op,
    param,
)

AUTH = (401, 403, 429, 503)
VERSION = {"type": "integer", "minimum": 1, "maximum": MAX_VERSION}
SUMMARY = (200, "The new draft version.", ref("VersionSummary"))


def _scoped(scope: str | None, text: str = "") -> str:
    who = f"Scope: `{scope}`." if scope else "Any valid token."
    return f"{who} {text}".strip()


def _items(
    section: str, singular: str, item: str, schema: Schema, lister: str
) -> dict[str, Schema]:
    name = param("name", "path", ID, f"The {singular}'s name.")
    title = singular.capitalize()
    return {
        f"/v1/admin/{section}": {
            "get": op(
                f"adminList{title}s",
                f"The draft's {section}",
                "admin",
                (200, f"Every {singular} of the draft.", ref(lister)),
                AUTH,
                description=_scoped("config:read"),
                security=ADMIN,
            )
        },
        f"/v1/admin/{section}/{{name}}": {
            "get": op(
                f"adminGet{title}",
                f"One {singular} of the draft",
                "admin",
                (
                    200,
                    f"The {singular}, as PUT takes it back; the draft version is the ETag.",
                    schema,
                ),
                (*AUTH, 404),
                description=_scoped("config:read"),
                parameters=[name],
                security=ADMIN,
                ok_headers=ETAG,
            ),
            "put": op(
                f"adminPut{title}",
                f"Create or replace a {singular} in the draft",
                "admin",
                SUMMARY,
                (*AUTH, 409, 422),
                description=_scoped("config:write", "Validated with the whole configuration."),
                body=ref(item) if item else schema,
                parameters=[name, IF_MATCH],
                security=ADMIN,
            ),
            "delete": op(
                f"adminDelete{title}",
                f"Remove a {singular} from the draft",
                "admin",
                SUMMARY,
                (*AUTH, 400, 404, 409, 422),
                description=_scoped("config:write", "Refused (422) while something uses it."),
                parameters=[name, IF_MATCH],
                security=ADMIN,
            ),
        },
    }


def admin_paths() -> dict[str, Schema]:
    """Every admin route."""
    version = param("n", "path", VERSION, "A version number.")
    model = param("version", "path", {"type": "string", "maxLength": 128}, "A model version.")
    return {
        "/v1/admin/whoami": {
            "get": op(
                "adminWhoami",
                "The calling token",
                "admin",
                (200, "Its name and scopes.", ref("Principal")),
                AUTH,
                description=_scoped(None),
                security=ADMIN,
            )
        },
        "/v1/admin/config": {
            "get": op(
                "adminGetConfig",
                "Export the draft configuration",
                "admin",
                (
                    200,
                    "The draft, as PUT takes it back. ETag: its version; "
                    "X-Persona-Live-Version: the published one (empty before the first).",
                    ref("Config"),
                ),
                (*AUTH, 400),
                description=_scoped("config:read"),
                parameters=[
                    param(
                        "format",
                        "query",
                        {"type": "string", "enum": ["json", "yaml"]},
                        "`yaml` answers a YAML file.",
                    )
                ],
                security=ADMIN,
                ok_headers={
                    **ETAG,
                    "X-Persona-Live-Version": {"schema": {"type": "string"}},
                },
                ok_type=(JSON, "application/yaml"),
            ),
            "put": op(
                "adminPutConfig",
                "Import a whole configuration as the new draft",
                "admin",
                SUMMARY,
                (*AUTH, 409, 422),
                description=_scoped(
                    "config:write",
                    "JSON, or YAML with `Content-Type: application/yaml` (safe tags only; "
                    "anchors and aliases are refused).",
                ),
                body=ref("Config"),
                body_types=(JSON, "application/yaml"),
                parameters=[
                    IF_MATCH,
                    param(
                        "message",
                        "query",
                        {"type": "string", "maxLength": 200},
                        "Shown in the history.",
                    ),
                ],
                security=ADMIN,
            ),
        },
        **_items("placements", "placement", "PlacementItem", ref("Placement"), "PlacementList"),
        **_items("variants", "variant", "VariantItem", ref("Variant"), "VariantList"),
        **_items("audiences", "audience", "", ref("Condition"), "AudienceList"),
        "/v1/admin/versions": {
            "get": op(
                "adminVersions",
                "The version history, newest first",
                "admin",
                (200, "Every version.", ref("VersionList")),
                AUTH,
                description=_scoped("config:read"),
                security=ADMIN,
            )
        },
        "/v1/admin/versions/{n}": {
            "get": op(
                "adminVersion",
                "One version with its document",
                "admin",
                (200, "The version.", ref("Version")),
                (*AUTH, 404),
                description=_scoped("config:read"),
                parameters=[version],
                security=ADMIN,
            )
        },
        "/v1/admin/versions/{n}/restore": {
            "post": op(
                "adminRestore",
                "Append an earlier version as the new draft",
                "admin",
                SUMMARY,
                (*AUTH, 404, 409, 422),
                description=_scoped("config:write"),
                parameters=[version],
                security=ADMIN,
            )
        },
        "/v1/admin/diff": {
            "get": op(
                "adminDiff",
                "What changed between two versions",
                "admin",
                (200, "One line per change.", ref("Diff")),
                (*AUTH, 400, 404),
                description=_scoped("config:read"),
                parameters=[
                    param("from", "query", VERSION, "The earlier version.", required=True),
                    param("to", "query", VERSION, "The later version.", required=True),
                ],
                security=ADMIN,
            )
        },
        "/v1/admin/publish": {
            "post": op(
                "adminPublish",
                "Make a version live in every process",
                "admin",
                (200, "The published version.", ref("VersionSummary")),
                (*AUTH, 400, 404, 408, 409, 413, 415, 422),
                description=_scoped(
                    "publish", 'Body optional: `{"version": N}`; default the draft.'
                ),
                security=ADMIN,
            )
        },
        "/v1/admin/preview": {
            "post": op(
                "adminPreview",
                "What a visitor would see in a slot, and why",
                "admin",
                (
                    200,
                    "Every variant with its score or the reason it is excluded.",
                    ref("Preview"),
                ),
                (*AUTH, 404, 422),
                description=_scoped(
                    "config:read",
                    "Naming a stored visitor (`visitor_id`) reads personal data and also needs "
                    "the `privacy` scope (403 otherwise); describe one with `profile` instead.",
                ),
                body=ref("PreviewRequest"),
                security=ADMIN,
            )
        },
        "/v1/admin/stats": {
            "get": op(
                "adminStats",
                "Impressions, clicks, CTR and conversions per variant",
                "admin",
                (200, "Counts per placement and variant.", ref("Stats")),
                (*AUTH, 400),
                description=_scoped("config:read"),
                parameters=[
                    param(
                        "days",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": 30},
                        "The window (default 1).",
                    ),
                ],
                security=ADMIN,
            )
        },
        "/v1/admin/models": {
            "get": op(
                "adminModels",
                "Registered models, and which is active or in shadow",
                "admin",
                (200, "The registry.", ref("ModelList")),
                AUTH,
                description=_scoped("models"),
                security=ADMIN,
            )
        },
        "/v1/admin/models/{version}/activate": {
            "post": op(
                "adminActivateModel",
                "Serve a registered model in every process",
                "admin",
                (200, "Active.", ref("ActiveModel")),
                (*AUTH, 404, 422),
                description=_scoped("models", "Refused (422) for another feature schema."),
                parameters=[model],
                security=ADMIN,
            )
        },
        "/v1/admin/models/rollback": {
            "post": op(
                "adminRollbackModel",
                "Re-activate the model active before the current one",
                "admin",
                (200, "Active.", ref("ActiveModel")),
                (*AUTH, 409),
                description=_scoped("models"),
                security=ADMIN,
            )
        },
        "/v1/admin/models/{version}/shadow": {
            "post": op(
                "adminShadowModel",
                "Score a registered model in shadow (logged, never shown)",
                "admin",
                (200, "In shadow.", ref("ShadowModel")),
                (*AUTH, 404, 422),
                description=_scoped("models"),
                parameters=[model],
                security=ADMIN,
            )
        },
        "/v1/admin/models/shadow": {
            "delete": op(
                "adminStopShadow",
                "Stop scoring in shadow",
                "admin",
                (200, "No shadow.", ref("ShadowModel")),
                AUTH,
                description=_scoped("models"),
                security=ADMIN,
            )
        },
    }

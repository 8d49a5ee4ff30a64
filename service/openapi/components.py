"""The OpenAPI document's schemas: request schemas from the structs that validate requests,
the condition language from the fact schema, response schemas written here.

Everything the service checks with a struct (formats, lengths, ranges, unknown
fields) reaches the document from that struct, so the two cannot disagree.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from service.admin.config import MAX_CONTENT_BYTES, MAX_VERSION
from service.admin.documents import MAX_NESTING
from service.admin.preview import PreviewBody
from service.audiences.conditions import COMPARISONS, MAX_DEPTH, Kind
from service.audiences.facts import FACTS
from service.catalog.loader import ID_PATTERN, CatalogDoc, PlacementDoc, ScheduleDoc, VariantDoc
from service.events.schemas import (
    Click,
    Consent,
    Conversion,
    Envelope,
    Feedback,
    Identify,
    Impression,
    View,
)
from service.http.schemas import ContextBody, DecideBody
from service.identity.visitor import SERVER_ID_MIN_DISTINCT, SERVER_ID_MIN_LENGTH
from service.metrics import FALLBACK_REASONS, POLICIES

REF = "#/components/schemas/{name}"
Schema = dict[str, Any]

# struct -> the name it has in the document
STRUCTS: dict[Any, str] = {
    DecideBody: "DecideRequest",
    ContextBody: "Context",
    Envelope: "EventBatch",
    View: "ViewEvent",
    Impression: "ImpressionEvent",
    Click: "ClickEvent",
    Conversion: "ConversionEvent",
    Feedback: "FeedbackEvent",
    Identify: "IdentifyEvent",
    Consent: "ConsentEvent",
    CatalogDoc: "Config",
    VariantDoc: "Variant",
    PlacementDoc: "Placement",
    ScheduleDoc: "Schedule",
    PreviewBody: "PreviewRequest",
}


def ref(name: str) -> Schema:
    """A reference to component ``name``."""
    return {"$ref": REF.format(name=name)}


def _ecma(node: Any) -> Any:
    """Python's end of text ``\\Z`` is JSON Schema's ``$``; refs renamed to document names."""
    if isinstance(node, dict):
        out = {k: _ecma(v) for k, v in node.items() if k != "title"}
        if isinstance(out.get("pattern"), str):
            out["pattern"] = out["pattern"].replace("\\Z", "$")
        if isinstance(out.get("$ref"), str):
            name = out["$ref"].rsplit("/", 1)[1]
            out["$ref"] = REF.format(name=_NAMES.get(name, name))
        return out
    if isinstance(node, list):
        return [_ecma(v) for v in node]
    return node


_NAMES = {struct.__name__: name for struct, name in STRUCTS.items()}


def struct_schemas() -> dict[str, Schema]:
    """Every request struct's JSON Schema, under its document name."""
    _, found = msgspec.json.schema_components(list(STRUCTS), ref_template=REF)
    out = {_NAMES.get(name, name): _ecma(schema) for name, schema in found.items()}
    event_union = {
        "description": "One event; `type` says which.",
        "oneOf": [
            ref(_NAMES[s.__name__])
            for s in (View, Impression, Click, Conversion, Feedback, Identify, Consent)
        ],
        "discriminator": {
            "propertyName": "type",
            "mapping": {
                tag: REF.format(name=_NAMES[s.__name__])
                for tag, s in (
                    ("view", View),
                    ("impression", Impression),
                    ("click", Click),
                    ("conversion", Conversion),
                    ("feedback", Feedback),
                    ("identify", Identify),
                    ("consent", Consent),
                )
            },
        },
    }
    out["Event"] = event_union
    out["EventBatch"]["properties"]["events"]["items"] = ref("Event")
    _describe_requests(out)
    return out


_SERVER_ONLY = (
    "Only for the site's server (`Authorization: Bearer <API key>`): a browser naming it "
    "gets 403 (per event: rejected)."
)
_STRENGTH = (
    f" A server-side visitor id must be at least {SERVER_ID_MIN_LENGTH} characters of at "
    f"least {SERVER_ID_MIN_DISTINCT} different ones (128 random bits, e.g. a UUID); weaker "
    "ones are refused (400)."
)


def _describe_requests(s: dict[str, Schema]) -> None:
    """What the structs cannot say: who may send a field, and limits set elsewhere."""
    decide = s["DecideRequest"]["properties"]
    decide["placements"].update(
        maxItems=100,
        uniqueItems=True,
        description="Slot names, distinct; at most PERSONA_MAX_PLACEMENTS (10, at most 100).",
    )
    decide["visitor_id"]["description"] = "The visitor. " + _SERVER_ONLY + _STRENGTH
    decide["customer_id"]["description"] = (
        "The site's customer id (pseudonymized at once). " + _SERVER_ONLY
    )
    decide["include_scores"]["description"] = (
        "Also return every variant's score, the propensity and exclusions. " + _SERVER_ONLY
    )
    for name in (
        "ViewEvent",
        "ImpressionEvent",
        "ClickEvent",
        "ConversionEvent",
        "FeedbackEvent",
        "IdentifyEvent",
        "ConsentEvent",
    ):
        props = s[name]["properties"]
        props["visitor_id"]["description"] = "The person. " + _SERVER_ONLY + _STRENGTH
    s["IdentifyEvent"]["properties"]["signature"]["description"] = (
        "A login token from the site's server: `v1.<expires>.<hex HMAC-SHA256(site secret, "
        '"persona-login-v1\\n" + customer_id + "\\n" + visitor id of the persona_vid cookie '
        '+ "\\n" + expires)>`, expiring within an hour. Required from a browser; optional '
        "with an API key. docs/identity-and-consent.md shows how to make one."
    )
    s["ConsentEvent"]["description"] = (
        "The visitor's consent choices. A withdrawal (`personalization: false`) is carried out "
        "for the caller's own identity whatever the consent header: the profile is deleted, "
        "the erasure queued, the cookie deleted. A grant must come with the consent it grants "
        "in X-Persona-Consent."
    )
    variant = s["Variant"]["properties"]
    variant["content"]["description"] = (
        f"What the page renders (title, body, image, link, ...): at most {MAX_CONTENT_BYTES} "
        f"bytes of JSON, nesting at most {MAX_NESTING} levels."
    )
    variant["rule"]["anyOf"][0] = ref("Condition")
    variant["rule"]["description"] = "Who may see it (docs/conditions.md)."
    s["Config"]["properties"]["audiences"]["additionalProperties"] = ref("Condition")
    s["Config"]["description"] = (
        "The whole configuration: variants, placements and audiences (name -> condition). "
        f"Validated as a whole; nesting at most {MAX_NESTING} levels."
    )
    for name in ("Variant", "Placement"):
        s[name + "Item"] = _item(s[name], "id" if name == "Variant" else "name")


def _item(schema: Schema, key: str) -> Schema:
    """The schema of a PUT of one item: its key may be left out (the URL names it)."""
    out = copy.deepcopy(schema)
    out["required"] = [r for r in out.get("required", []) if r != key]
    out["properties"][key]["description"] = "Optional: the URL names it; if given, the same."
    return out


_KIND_TYPES: dict[Kind, Schema] = {
    "number": {"type": "number"},
    "string": {"type": "string", "maxLength": 256},
    "bool": {"type": "boolean"},
    "list": {"type": "string", "maxLength": 256},
}


_TEST_NAMES: dict[Kind, str] = {
    "number": "NumberTest",
    "string": "StringTest",
    "bool": "BooleanTest",
    "list": "ListTest",
}


def _fact_test(kind: Kind) -> Schema:
    """A fact's test: a literal (equality) or an object of operators."""
    literal = _KIND_TYPES[kind]
    operators: Schema = {
        "$eq": literal,
        "$ne": literal,
        "$in": {"type": "array", "items": literal},
        "$nin": {"type": "array", "items": literal},
        "$exists": {"type": "boolean"},
        "$not": ref(_TEST_NAMES[kind]),
    }
    if kind in ("number", "string"):
        operators.update(dict.fromkeys(COMPARISONS, literal))
    return {
        "description": f"A test of a {kind} fact: a literal (equality) or operators.",
        "oneOf": [
            literal,
            {
                "type": "object",
                "properties": operators,
                "additionalProperties": False,
                "minProperties": 1,
            },
        ],
    }


def condition_schemas() -> dict[str, Schema]:
    """The condition language (docs/conditions.md) as JSON Schema, from the fact schema."""
    facts = {name: ref(_TEST_NAMES[kind]) for name, kind in FACTS.names.items()}
    prefixes = {
        "^" + prefix.replace(".", "\\.") + ID_PATTERN[1:]: ref(_TEST_NAMES[kind])
        for prefix, kind in FACTS.prefixes.items()
    }
    tests = {name: _fact_test(kind) for kind, name in _TEST_NAMES.items()}
    return {
        **tests,
        "Condition": {
            "type": "object",
            "description": (
                "All keys must hold. A key is a fact (its value a literal for equality, or "
                "operators) or a logical operator. Unknown facts are refused; nesting (audiences "
                f"written out) at most {MAX_DEPTH} levels. See docs/conditions.md."
            ),
            "properties": {
                **facts,
                "$and": {"type": "array", "minItems": 1, "items": ref("Condition")},
                "$or": {"type": "array", "minItems": 1, "items": ref("Condition")},
                "$not": ref("Condition"),
                "$audience": {"type": "string", "pattern": ID_PATTERN},
            },
            "patternProperties": prefixes,
            "additionalProperties": False,
        },
    }


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


STRING = {"type": "string"}
ERROR: Schema = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "A stable, machine-readable code."},
        "message": {"type": "string", "description": "What is wrong, for a person."},
    },
}


def response_schemas() -> dict[str, Schema]:
    """The schemas of what the service answers."""
    decision: Schema = {
        "type": "object",
        "required": [
            "decision_id",
            "variant_id",
            "content",
            "policy",
            "fallback",
            "model_version",
        ],
        "properties": {
            "decision_id": {
                "type": "string",
                "pattern": "^[0-9a-f]{27}$",
                "description": "Unique and time-ordered (11 hex digits of Unix milliseconds, 16 "
                "random). Report it with the impression and click events.",
            },
            "variant_id": {**_nullable(STRING), "description": "Null for an unknown slot."},
            "content": {
                **_nullable({"type": "object"}),
                "description": "The variant's content; null for an unknown slot.",
            },
            "policy": {"type": "string", "enum": list(POLICIES)},
            "fallback": {
                "enum": [None, *FALLBACK_REASONS],
                "description": "Why the slot's default was served; null when nothing failed.",
            },
            "model_version": _nullable(STRING),
            "error": {"type": "string", "description": "Only for an unknown slot."},
            "more": {
                "type": "array",
                "description": "The next best variants, for a slot with `count` > 1.",
                "items": {
                    "type": "object",
                    "required": ["variant_id", "content"],
                    "properties": {"variant_id": STRING, "content": {"type": "object"}},
                },
            },
            "propensity": {"type": "number", "minimum": 0, "maximum": 1},
            "scores": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["variant_id", "score"],
                    "properties": {"variant_id": STRING, "score": {"type": "number"}},
                },
            },
            "excluded": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["variant_id", "reason"],
                    "properties": {
                        "variant_id": STRING,
                        "reason": {
                            "type": "string",
                            "enum": ["paused", "schedule", "rule", "frequency_cap"],
                        },
                    },
                },
            },
        },
        "additionalProperties": False,
    }
    verdict: Schema = {
        "type": "object",
        "required": ["index", "event_id", "status"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "event_id": _nullable(STRING),
            "status": {
                "type": "string",
                "enum": ["accepted", "duplicate", "rejected", "ignored"],
            },
            "reason": STRING,
            "clamped": {"type": "boolean", "const": True},
        },
        "additionalProperties": False,
    }
    counts = {
        k: {"type": "integer", "minimum": 0}
        for k in ("accepted", "duplicate", "rejected", "ignored")
    }
    version_summary: Schema = {
        "type": "object",
        "required": ["version", "author", "created", "message", "changes"],
        "properties": {
            "version": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
            "author": STRING,
            "created": {"type": "number"},
            "message": STRING,
            "changes": {"type": "array", "items": STRING},
            "live": {"type": "boolean"},
        },
    }
    return {
        "Error": ERROR,
        "Decision": decision,
        "DecideResponse": {
            "type": "object",
            "required": ["decisions"],
            "properties": {
                "visitor_id": {
                    **_nullable(STRING),
                    "description": "Only in answers to the site's server: who the decisions "
                    "are for (null without consent). A browser never sees an id.",
                },
                "decisions": {"type": "object", "additionalProperties": ref("Decision")},
            },
            "additionalProperties": False,
        },
        "EventVerdict": verdict,
        "EventBatchResult": {
            "type": "object",
            "required": [*counts, "results"],
            "properties": {
                **counts,
                "results": {"type": "array", "items": ref("EventVerdict")},
                "error": STRING,
                "message": STRING,
            },
            "additionalProperties": False,
        },
        "Readiness": {
            "type": "object",
            "required": [
                "ready",
                "checks",
                "model_version",
                "model_predictor",
                "shadow_version",
                "catalog_version",
            ],
            "properties": {
                "ready": {"type": "boolean"},
                "checks": {
                    "type": "object",
                    "required": ["redis", "model", "catalog"],
                    "properties": {k: {"type": "boolean"} for k in ("redis", "model", "catalog")},
                },
                "model_version": _nullable(STRING),
                "model_predictor": _nullable(STRING),
                "shadow_version": _nullable(STRING),
                "catalog_version": _nullable(STRING),
            },
        },
        "VersionSummary": version_summary,
        "VersionList": {
            "type": "object",
            "required": ["live", "versions"],
            "properties": {
                "live": _nullable({"type": "integer"}),
                "versions": {"type": "array", "items": ref("VersionSummary")},
            },
        },
        "Version": {
            "allOf": [
                ref("VersionSummary"),
                {"type": "object", "required": ["config"], "properties": {"config": ref("Config")}},
            ]
        },
        "Diff": {
            "type": "object",
            "required": ["from", "to", "changes"],
            "properties": {
                "from": {"type": "integer"},
                "to": {"type": "integer"},
                "changes": {"type": "array", "items": STRING},
            },
        },
        "PlacementList": _list("placements", {"type": "array", "items": ref("Placement")}),
        "VariantList": _list("variants", {"type": "array", "items": ref("Variant")}),
        "AudienceList": _list(
            "audiences", {"type": "object", "additionalProperties": ref("Condition")}
        ),
        "Preview": {
            "type": "object",
            "required": [
                "placement",
                "catalog_version",
                "known_visitor",
                "facts",
                "variants",
                "choice",
                "paused",
                "explore_share",
                "holdout_share",
                "model_version",
            ],
            "properties": {
                "placement": STRING,
                "catalog_version": STRING,
                "known_visitor": {"type": "boolean"},
                "facts": {"type": "object"},
                "variants": {"type": "array", "items": {"type": "object"}},
                "choice": {"type": "object"},
                "paused": {"type": "boolean"},
                "explore_share": {"type": "number"},
                "holdout_share": {"type": "number"},
                "model_version": _nullable(STRING),
            },
        },
        "Stats": {
            "type": "object",
            "required": ["days", "since", "placements"],
            "properties": {
                "days": {"type": "integer", "minimum": 1, "maximum": 30},
                "since": {"type": "number"},
                "placements": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {
                                k: {"type": "number", "minimum": 0}
                                for k in ("impressions", "clicks", "ctr", "conversions", "value")
                            },
                        },
                    },
                },
            },
        },
        "ModelList": {
            "type": "object",
            "required": ["active", "shadow", "models"],
            "properties": {
                "active": _nullable(STRING),
                "shadow": _nullable(STRING),
                "models": {"type": "array", "items": {"type": "object"}},
            },
        },
        "ActiveModel": {
            "type": "object",
            "required": ["active"],
            "properties": {"active": STRING},
        },
        "ShadowModel": {
            "type": "object",
            "required": ["shadow"],
            "properties": {"shadow": _nullable(STRING)},
        },
        "Principal": {
            "type": "object",
            "required": ["name", "scopes"],
            "properties": {"name": STRING, "scopes": {"type": "array", "items": STRING}},
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "const": "ok"}},
        },
        "Me": {
            "type": "object",
            "required": ["known", "profile"],
            "properties": {
                "known": {"type": "boolean", "description": "Whether a profile is held."},
                "profile": {"anyOf": [ref("ReadableProfile"), {"type": "null"}]},
            },
        },
        "ReadableProfile": _readable_profile(),
    }


def _readable_profile() -> Schema:
    weights: Schema = {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "weight"],
            "properties": {"name": {"type": "string"}, "weight": {"type": "number"}},
        },
        "description": "Decayed to now, strongest first (at most 10).",
    }
    when: Schema = {"type": ["string", "null"], "description": "ISO 8601, UTC."}
    count: Schema = {"type": "number", "minimum": 0}
    fields: dict[str, Schema] = {
        "first_seen": when,
        "last_seen": when,
        "visits": count,
        "page_views": count,
        "interests": weights,
        "topics": weights,
        "recent_categories": {"type": "array", "items": {"type": "string"}},
        "content_seen": count,
        "content_clicked": count,
        "orders": count,
        "order_value": count,
        "feedback_average": {"type": ["number", "null"]},
        "feedback_given": count,
        "average_price_band": {"type": ["number", "null"]},
    }
    return {"type": "object", "required": list(fields), "properties": fields}


def _list(key: str, items: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["version", key],
        "properties": {"version": {"type": "integer", "minimum": 0}, key: items},
    }


def schemas() -> dict[str, Schema]:
    """Every component schema of the document."""
    return dict(sorted({**struct_schemas(), **condition_schemas(), **response_schemas()}.items()))

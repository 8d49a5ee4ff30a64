"""The audience condition language: table-driven evaluation and validation."""

from __future__ import annotations

import time
from typing import Any

import pytest

from service.audiences.conditions import ConditionError, compile_audiences, compile_condition
from service.audiences.facts import FACTS, facts_for
from service.features.builder import visitor_view
from service.features.context import Context

RUNNER: dict[str, Any] = {
    "known": True,
    "visits": 5,
    "views": 40,
    "device": "mobile",
    "page_type": "category",
    "affinity.running": 0.6,
    "affinity.yoga": 0.1,
    "recent_categories": ["running", "yoga"],
    "top_category": "running",
}
NEWCOMER: dict[str, Any] = {"known": False, "device": "desktop", "page_type": "home"}

CASES: list[tuple[str, dict[str, Any], bool, bool]] = [
    # (what, condition, matches RUNNER, matches NEWCOMER)
    ("empty matches all", {}, True, True),
    ("literal equality", {"device": "mobile"}, True, False),
    ("$eq", {"device": {"$eq": "desktop"}}, False, True),
    ("$ne matches missing", {"top_category": {"$ne": "yoga"}}, True, True),
    ("$gte", {"visits": {"$gte": 3}}, True, False),
    ("$gt boundary", {"visits": {"$gt": 5}}, False, False),
    ("$lt", {"visits": {"$lt": 6}}, True, False),
    ("$lte boundary", {"visits": {"$lte": 5}}, True, False),
    ("range", {"views": {"$gt": 10, "$lt": 50}}, True, False),
    ("range miss", {"views": {"$gt": 10, "$lt": 20}}, False, False),
    ("dotted prefix fact", {"affinity.running": {"$gt": 0.2}}, True, False),
    ("unseen category", {"affinity.hiking": {"$gt": 0.2}}, False, False),
    ("$in", {"device": {"$in": ["mobile", "tablet"]}}, True, False),
    ("$nin matches missing", {"top_category": {"$nin": ["yoga"]}}, True, True),
    ("list fact: $eq is membership", {"recent_categories": "yoga"}, True, False),
    ("list fact: $in any", {"recent_categories": {"$in": ["hiking", "running"]}}, True, False),
    ("list fact: $nin", {"recent_categories": {"$nin": ["running"]}}, False, True),
    ("$exists true", {"visits": {"$exists": True}}, True, False),
    ("$exists false", {"visits": {"$exists": False}}, False, True),
    ("field $not", {"visits": {"$not": {"$gte": 3}}}, False, True),
    ("implicit and", {"device": "mobile", "visits": {"$gte": 10}}, False, False),
    ("$and", {"$and": [{"device": "mobile"}, {"visits": {"$gte": 3}}]}, True, False),
    ("$or", {"$or": [{"device": "desktop"}, {"visits": {"$gte": 3}}]}, True, True),
    ("$not", {"$not": {"device": "mobile"}}, False, True),
    ("bool fact", {"known": False}, False, True),
    (
        "issue example",
        {"visits": {"$gte": 3}, "device": "mobile", "affinity.running": {"$gt": 0.2}},
        True,
        False,
    ),
]


@pytest.mark.parametrize(("what", "cond", "runner", "newcomer"), CASES, ids=[c[0] for c in CASES])
def test_evaluation(what: str, cond: dict[str, Any], runner: bool, newcomer: bool) -> None:
    predicate = compile_condition(cond, FACTS)
    assert predicate(RUNNER) is runner
    assert predicate(NEWCOMER) is newcomer


INVALID: list[tuple[dict[str, Any], str, str]] = [
    # (condition, path named, words in the message)
    ({"visit": 3}, "$.visit", "unknown fact 'visit'"),
    ({"visits": "three"}, "$.visits", "expected a number"),
    ({"visits": {"$gte": "3"}}, "$.visits.$gte", "expected a number"),
    ({"device": {"$gt": 3}}, "$.device.$gt", "expected a string"),
    ({"known": {"$gt": True}}, "$.known.$gt", "compares numbers or strings"),
    ({"visits": {"$regex": "x"}}, "$.visits.$regex", "unknown operator '$regex'"),
    ({"$where": "1"}, "$.$where", "unknown operator '$where'"),
    ({"device": {"$in": "mobile"}}, "$.device.$in", "takes a list"),
    ({"device": {"$in": ["mobile", 3]}}, "$.device.$in[1]", "expected a string"),
    ({"visits": {"$exists": 1}}, "$.visits.$exists", "true or false"),
    ({"$or": []}, "$.$or", "non-empty list"),
    ({"$and": [{"device": "mobile"}, "x"]}, "$.$and[1]", "must be an object"),
    ({"device": {"mobile": 1}}, "$.device", "only operators"),
    ({"$audience": "nobody"}, "$.$audience", "unknown audience 'nobody'"),
    ({"visits": True}, "$.visits", "expected a number"),
]


@pytest.mark.parametrize(
    ("cond", "path", "words"), INVALID, ids=[i[1] + " " + i[2] for i in INVALID]
)
def test_invalid_conditions_name_the_path_and_the_problem(
    cond: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(cond, FACTS)
    assert info.value.path == path
    assert words in info.value.message


def test_audiences_refer_to_each_other() -> None:
    audiences = {
        "mobile": {"device": "mobile"},
        "runners": {"affinity.running": {"$gte": 0.5}},
        "mobile-runners": {"$audience": "runners", "$and": [{"$audience": "mobile"}]},
    }
    compiled = compile_audiences(audiences, FACTS)
    assert compiled["mobile-runners"](RUNNER) is True
    assert compiled["mobile-runners"]({**RUNNER, "device": "desktop"}) is False
    targeting = compile_condition({"$not": {"$audience": "runners"}}, FACTS, audiences)
    assert targeting(NEWCOMER) is True and targeting(RUNNER) is False


def test_a_cycle_of_audiences_is_refused_with_the_cycle() -> None:
    audiences = {
        "a": {"$audience": "b"},
        "b": {"$or": [{"device": "mobile"}, {"$audience": "c"}]},
        "c": {"$audience": "a"},
    }
    with pytest.raises(ConditionError) as info:
        compile_audiences(audiences, FACTS)
    assert "a -> b -> c -> a" in info.value.message


def test_deep_nesting_is_refused() -> None:
    cond: dict[str, Any] = {"device": "mobile"}
    for _ in range(40):
        cond = {"$not": cond}
    with pytest.raises(ConditionError, match="nested deeper"):
        compile_condition(cond, FACTS)


def test_facts_come_from_the_profile_the_model_reads() -> None:
    now = time.time()
    profile = {
        "first": now - 3 * 86400,
        "last": now - 3600,
        "sessions": 4,
        "views": 12,
        "clicks": 2,
        "imps": 8,
        "cat": {"running": [3.0, now], "yoga": [1.0, now]},
        "tag": {"trail": [2.0, now]},
        "recent": ["running", "yoga"],
    }
    facts = facts_for(visitor_view(profile, now, 14 * 86400), Context(device="mobile"))
    assert facts["visits"] == 4 and facts["known"] is True
    assert facts["affinity.running"] == pytest.approx(0.75)
    assert facts["top_category"] == "running"
    assert facts["tag.trail"] == pytest.approx(2.0)
    assert facts["days_since_first"] == pytest.approx(3.0, rel=1e-3)
    assert facts["ctr"] == pytest.approx(0.25)
    assert "feedback_avg" not in facts  # no feedback: absent, not NaN
    condition = {"visits": {"$gte": 3}, "device": "mobile", "affinity.running": {"$gt": 0.2}}
    assert compile_condition(condition, FACTS)(facts) is True
    unknown = facts_for(visitor_view(None, now, 14 * 86400), Context())
    assert unknown["known"] is False and "visits" not in unknown
    assert compile_condition(condition, FACTS)(unknown) is False
    # every fact produced is one a condition may name
    assert all(FACTS.kind(name) is not None for name in {**facts, **unknown})

"""The audience condition language: MongoDB/GrowthBook-style conditions, compiled once.

A condition is a JSON object. Its keys are fact names (``visits``, ``device``,
``affinity.running``) or logical operators (``$and``, ``$or``, ``$not``,
``$audience``); all keys must hold. A fact's value is a literal (equality) or
an object of operators: ``$eq $ne $in $nin $gt $gte $lt $lte $exists $not``.

Conditions are validated against the known facts (a misspelt name is an error,
not a silent "never matches") and compiled to closures; nothing is ever
evaluated as code. Semantics follow MongoDB where they differ from intuition:
a missing fact fails every comparison, but satisfies ``$ne``, ``$nin`` and
``{"$exists": false}``; against a list fact, ``$eq`` and ``$in`` match when
any element does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Facts = Mapping[str, Any]
Predicate = Callable[[Facts], bool]
Kind = Literal["number", "string", "bool", "list"]

COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
FIELD_OPERATORS = ("$eq", "$ne", "$in", "$nin", *COMPARISONS, "$exists", "$not")
LOGICAL_OPERATORS = ("$and", "$or", "$not", "$audience")
MAX_DEPTH = 32


class ConditionError(ValueError):
    """A condition is invalid; ``path`` points at the offending part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class FactSchema:
    """The facts a condition may name: exact names, and prefixes such as ``affinity.``."""

    names: Mapping[str, Kind]
    prefixes: Mapping[str, Kind] = field(default_factory=dict)

    def kind(self, name: str) -> Kind | None:
        """The kind of fact ``name``, or ``None`` when there is no such fact."""
        if name in self.names:
            return self.names[name]
        for prefix, kind in self.prefixes.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                return kind
        return None


def _type_ok(kind: Kind, value: Any) -> bool:
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    # a list fact is compared with its elements, which are strings
    return isinstance(value, str)


def _kind_name(kind: Kind) -> str:
    return {"number": "a number", "bool": "true or false", "string": "a string"}.get(
        kind, "a string (an element of the list)"
    )


def _equals(kind: Kind, name: str, value: Any) -> Predicate:
    if kind == "list":
        return lambda facts: value in (facts.get(name) or ())
    return lambda facts: name in facts and facts[name] == value


def _member(kind: Kind, name: str, values: frozenset[Any]) -> Predicate:
    if kind == "list":
        return lambda facts: not values.isdisjoint(facts.get(name) or ())
    return lambda facts: facts.get(name) in values if name in facts else False


def _compare(name: str, op: str, bound: Any) -> Predicate:
    def test(facts: Facts) -> bool:
        value = facts.get(name)
        if value is None or type(value) is bool or isinstance(bound, str) != isinstance(value, str):
            return False
        if op == "$gt":
            return bool(value > bound)
        if op == "$gte":
            return bool(value >= bound)
        if op == "$lt":
            return bool(value < bound)
        return bool(value <= bound)

    return test


def _all(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    return lambda facts: all(p(facts) for p in predicates)


def _any(predicates: list[Predicate]) -> Predicate:
    return lambda facts: any(p(facts) for p in predicates)


def _negate(predicate: Predicate) -> Predicate:
    return lambda facts: not predicate(facts)


class _Compiler:
    def __init__(self, schema: FactSchema, audiences: Mapping[str, Any]) -> None:
        self.schema = schema
        self.sources = audiences
        self.compiled: dict[str, tuple[Predicate, int]] = {}
        self.visiting: list[str] = []
        self.deepest = 0

    def audience(self, name: str, path: str, depth: int = 0) -> Predicate:
        """The compiled audience; its nesting counts where it is used (an audience
        that names an audience that names one ... is as deep as written out)."""
        if name in self.compiled:
            predicate, height = self.compiled[name]
            self._reach(depth + height, path)
            return predicate
        if name not in self.sources:
            raise ConditionError(path, f"unknown audience {name!r}")
        if name in self.visiting:
            cycle = " -> ".join([*self.visiting[self.visiting.index(name) :], name])
            raise ConditionError(path, f"audiences refer to each other in a cycle: {cycle}")
        self.visiting.append(name)
        outer, self.deepest = self.deepest, depth
        predicate = self.condition(self.sources[name], f"audiences.{name}", depth)
        height, self.deepest = self.deepest - depth, max(outer, self.deepest)
        self.visiting.pop()
        self.compiled[name] = (predicate, height)
        return predicate

    def _reach(self, depth: int, path: str) -> None:
        if depth > MAX_DEPTH:
            raise ConditionError(path, f"nested deeper than {MAX_DEPTH} levels")
        self.deepest = max(self.deepest, depth)

    def condition(self, cond: Any, path: str, depth: int) -> Predicate:
        self._reach(depth, path)
        if not isinstance(cond, dict):
            raise ConditionError(path, "a condition must be an object")
        parts: list[Predicate] = []
        for key, value in cond.items():
            sub = f"{path}.{key}"
            if not isinstance(key, str):
                raise ConditionError(path, "keys must be strings")
            if key.startswith("$"):
                parts.append(self.logical(key, value, sub, depth))
            else:
                parts.append(self.fact(key, value, sub, depth))
        if not parts:
            return lambda facts: True
        return _all(parts)

    def logical(self, op: str, value: Any, path: str, depth: int) -> Predicate:
        if op in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise ConditionError(path, f"{op} takes a non-empty list of conditions")
            subs = [self.condition(c, f"{path}[{i}]", depth + 1) for i, c in enumerate(value)]
            return _all(subs) if op == "$and" else _any(subs)
        if op == "$not":
            return _negate(self.condition(value, path, depth + 1))
        if op == "$audience":
            if not isinstance(value, str) or not value:
                raise ConditionError(path, "$audience takes an audience name")
            return self.audience(value, path, depth + 1)
        raise ConditionError(
            path, f"unknown operator {op!r} here; use one of {', '.join(LOGICAL_OPERATORS)}"
        )

    def fact(self, name: str, spec: Any, path: str, depth: int) -> Predicate:
        kind = self.schema.kind(name)
        if kind is None:
            raise ConditionError(path, f"unknown fact {name!r} (see the condition reference)")
        if isinstance(spec, dict) and spec and all(str(k).startswith("$") for k in spec):
            return _all(
                [self.operator(name, kind, op, v, f"{path}.{op}", depth) for op, v in spec.items()]
            )
        if isinstance(spec, dict):
            raise ConditionError(path, "an object here must hold only operators ($eq, $gt, ...)")
        return self.operator(name, kind, "$eq", spec, path, depth)

    def operator(
        self, name: str, kind: Kind, op: str, value: Any, path: str, depth: int
    ) -> Predicate:
        if op in ("$eq", "$ne"):
            self.literal(kind, value, path)
            equal = _equals(kind, name, value)
            return equal if op == "$eq" else _negate(equal)
        if op in ("$in", "$nin"):
            if not isinstance(value, list):
                raise ConditionError(path, f"{op} takes a list")
            for i, v in enumerate(value):
                self.literal(kind, v, f"{path}[{i}]")
            member = _member(kind, name, frozenset(value))
            return member if op == "$in" else _negate(member)
        if op in COMPARISONS:
            if kind not in ("number", "string"):
                raise ConditionError(
                    path, f"{op} compares numbers or strings; {name!r} is a {kind}"
                )
            self.literal(kind, value, path)
            return _compare(name, op, value)
        if op == "$exists":
            if not isinstance(value, bool):
                raise ConditionError(path, "$exists takes true or false")
            return (lambda facts: name in facts) if value else (lambda facts: name not in facts)
        if op == "$not":
            return _negate(self.fact(name, value, path, depth + 1))
        raise ConditionError(
            path, f"unknown operator {op!r}; use one of {', '.join(FIELD_OPERATORS)}"
        )

    @staticmethod
    def literal(kind: Kind, value: Any, path: str) -> None:
        if not _type_ok(kind, value):
            raise ConditionError(path, f"expected {_kind_name(kind)}, got {value!r}")


def compile_condition(
    cond: Any, schema: FactSchema, audiences: Mapping[str, Any] | None = None
) -> Predicate:
    """Validate ``cond`` and return it as a predicate over facts.

    ``audiences`` are the named conditions ``$audience`` may refer to.
    Raises :class:`ConditionError` naming the offending path.
    """
    return _Compiler(schema, audiences or {}).condition(cond, "$", 0)


def compile_audiences(audiences: Mapping[str, Any], schema: FactSchema) -> dict[str, Predicate]:
    """Validate and compile every audience (references resolved, cycles refused)."""
    compiler = _Compiler(schema, audiences)
    return {name: compiler.audience(name, f"audiences.{name}") for name in audiences}

"""Reading configuration documents safely: bounded nesting, YAML without aliases.

A configuration is a small tree. Two limits keep a hostile or broken one from
costing more than its size: nesting deeper than ``MAX_NESTING`` levels is
refused (422) before anything walks it recursively, and YAML anchors and
aliases are refused while the document is parsed, so an alias "bomb" (a few
hundred bytes that expand to gigabytes) is never expanded.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_NESTING = 32
"""Deepest nesting of objects and lists a configuration document may have."""


class DocumentError(ValueError):
    """The body is not a well-formed document (400); the message says why."""


class DocumentRefused(DocumentError):
    """A well-formed document beyond what is accepted (422): too deep, or with YAML aliases."""


class _Refused(yaml.YAMLError):
    """Raised inside the YAML parser for what is refused rather than malformed."""


def nesting(doc: Any) -> int:
    """How deeply objects and lists nest in ``doc`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_NESTING:
                return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def check_nesting(doc: Any) -> None:
    """Raise :class:`DocumentError` when ``doc`` nests deeper than :data:`MAX_NESTING`."""
    if nesting(doc) > MAX_NESTING:
        raise DocumentRefused(f"the document nests deeper than {MAX_NESTING} levels")


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors and aliases as they are parsed."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark
            raise _Refused(
                f"YAML anchors and aliases are not accepted (line {mark.line + 1}, "
                f"column {mark.column + 1})"
            )
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """Parse a YAML configuration: safe tags only, no anchors or aliases, bounded nesting."""
    try:
        doc = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise DocumentRefused(str(exc)) from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"the body is not valid YAML: {exc}") from None
    except RecursionError:
        raise DocumentRefused(f"the document nests deeper than {MAX_NESTING} levels") from None
    check_nesting(doc)
    return doc

"""The versioned configuration: placements, variants and audiences in Redis.

Every change appends a new version (the whole document, who, when, what
changed); the newest version is the draft. Publishing points ``live`` at a
version; restoring appends an earlier version's document as a new one. Every
document is validated as a whole before it is stored, so nothing invalid is
ever written. Service processes load the live version (see
:class:`RedisCatalogSource`) and swap it in as one object.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
import redis.asyncio as aioredis

from service.admin.documents import DocumentRefused, check_nesting
from service.catalog.loader import CatalogDoc, CatalogError, parse_catalog
from service.catalog.model import Catalog
from service.store.keyspace import CONFIG_CHANNEL, CONFIG_LIVE, CONFIG_VERSIONS

MAX_CONTENT_BYTES = 16 * 1024
MAX_VERSION = 1_000_000_000
"""Version numbers beyond this cannot exist (and never reach Redis as an index)."""


class ConfigError(ValueError):
    """The configuration is invalid (the message names the field and the problem)."""


class ConfigConflict(ConfigError):
    """The draft changed since the caller read it."""


class NoSuchVersion(ConfigError):
    """The version asked for does not exist."""


ConfigDoc = CatalogDoc  # the whole configuration: variants, placements, audiences


@dataclass(frozen=True, slots=True)
class Version:
    """One stored version of the configuration."""

    number: int
    doc: dict[str, Any]
    author: str
    created: float
    message: str
    changes: list[str]

    def summary(self) -> dict[str, Any]:
        """The version without its document."""
        return {
            "version": self.number,
            "author": self.author,
            "created": self.created,
            "message": self.message,
            "changes": self.changes,
        }


def validate(doc: Any) -> tuple[dict[str, Any], Catalog]:
    """Validate a whole configuration; return it normalized and compiled.

    Raises :class:`ConfigError` whose message names the field and the problem.
    """
    try:
        check_nesting(doc)
    except DocumentRefused as exc:
        raise ConfigError(str(exc)) from None
    raw = orjson.dumps(doc)
    try:
        typed = msgspec.json.decode(raw, type=ConfigDoc)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc)) from None
    for i, v in enumerate(typed.variants):
        size = len(orjson.dumps(v.content))
        if size > MAX_CONTENT_BYTES:
            raise ConfigError(
                f"content of variant {v.id!r} is {size} bytes, over the limit of "
                f"{MAX_CONTENT_BYTES} - at `$.variants[{i}].content`"
            )
    normalized: dict[str, Any] = msgspec.to_builtins(typed)
    try:
        catalog = parse_catalog(orjson.dumps(normalized), origin="config")
    except CatalogError as exc:
        raise ConfigError(str(exc)) from None
    return normalized, catalog


def changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What changed between two documents, one line per item added, removed or edited."""
    out: list[str] = []
    for section, key in (("variants", "id"), ("placements", "name")):
        before = {d[key]: d for d in (old or {}).get(section, [])}
        after = {d[key]: d for d in new.get(section, [])}
        out += _diff(section[:-1], before, after)
    out += _diff("audience", (old or {}).get("audiences", {}), new.get("audiences", {}))
    return out


def _diff(kind: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    lines = [f"added {kind} {k}" for k in after if k not in before]
    lines += [f"removed {kind} {k}" for k in before if k not in after]
    for k in after:
        if k in before and before[k] != after[k]:
            a, b = before[k], after[k]
            fields = (
                sorted(f for f in {*a, *b} if a.get(f) != b.get(f))
                if isinstance(a, dict) and isinstance(b, dict) and kind != "audience"
                else []
            )
            lines.append(f"changed {kind} {k}" + (f" ({', '.join(fields)})" if fields else ""))
    return lines


class ConfigStore:
    """Versions in a Redis list (index = number - 1) and the live pointer."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def count(self) -> int:
        """How many versions exist."""
        return int(await self.client.llen(CONFIG_VERSIONS))

    async def get(self, number: int) -> Version:
        """Version ``number``; :class:`ConfigError` when there is none."""
        in_range = 1 <= number <= MAX_VERSION
        raw = await self.client.lindex(CONFIG_VERSIONS, number - 1) if in_range else None
        if raw is None:
            raise NoSuchVersion(f"there is no version {number}")
        return _version(raw)

    async def draft(self) -> Version | None:
        """The newest version, or ``None`` before the first change."""
        raw = await self.client.lindex(CONFIG_VERSIONS, -1)
        return None if raw is None else _version(raw)

    async def history(self) -> list[Version]:
        """Every version, oldest first."""
        return [_version(raw) for raw in await self.client.lrange(CONFIG_VERSIONS, 0, -1)]

    async def live(self) -> int | None:
        """The published version's number."""
        raw = await self.client.get(CONFIG_LIVE)
        return int(raw) if raw is not None else None

    async def save(
        self, doc: Any, author: str, message: str, expected: int | None = None
    ) -> Version:
        """Validate ``doc`` and append it as the new draft.

        ``expected`` is the draft number the caller edited: if another change
        landed since, :class:`ConfigError` (the caller reloads) instead of a
        silently lost update.
        """
        normalized, _ = validate(doc)
        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(CONFIG_VERSIONS)
            head_raw = await pipe.lindex(CONFIG_VERSIONS, -1)
            head = None if head_raw is None else _version(head_raw)
            number = (head.number if head else 0) + 1
            if expected is not None and expected != number - 1:
                raise ConfigConflict(
                    f"the draft is at version {number - 1}, not {expected}: reload and retry"
                )
            version = Version(
                number,
                normalized,
                author,
                time.time(),
                message,
                changes(head.doc if head else None, normalized),
            )
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.rpush(CONFIG_VERSIONS, orjson.dumps(_record(version)))
            await pipe.execute()
        return version

    async def publish(self, number: int) -> Version:
        """Make version ``number`` live and tell every process."""
        version = await self.get(number)
        validate(version.doc)  # stored versions are valid; a changed schema might not be
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(CONFIG_LIVE, number)
            pipe.publish(CONFIG_CHANNEL, number)
            await pipe.execute()
        return version

    async def restore(self, number: int, author: str) -> Version:
        """Append version ``number``'s document as the new draft."""
        old = await self.get(number)
        return await self.save(old.doc, author, f"restore version {number}")


def _record(v: Version) -> dict[str, Any]:
    return {**v.summary(), "doc": v.doc}


def _version(raw: bytes | str) -> Version:
    r = orjson.loads(raw)
    return Version(r["version"], r["doc"], r["author"], r["created"], r["message"], r["changes"])


class RedisCatalogSource:
    """The live configuration as the service's catalog (the ``CatalogSource`` protocol)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.store = ConfigStore(client)

    async def load(self) -> Catalog:
        """The published version, compiled; :class:`CatalogError` when none is published."""
        number = await self.store.live()
        if number is None:
            raise CatalogError("no configuration is published yet")
        version = await self.store.get(number)
        try:
            _, catalog = validate(version.doc)
        except ConfigError as exc:
            raise CatalogError(f"published version {number}: {exc}") from None
        return dataclasses.replace(catalog, version=f"v{number}")

"""Exporting the event log to Parquet files by day, exactly once.

Files are ``<out>/day=YYYY-MM-DD/p<NN>-<first id>-<last id>.parquet`` (UTC day of
the event's timestamp). Each file is written to a temporary name and renamed,
then its entries are acknowledged. The file names say which stream ids are
already exported, so entries redelivered after a crash (at-least-once) are
acknowledged without being written again: no entry is lost, none is doubled.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from service.events.log import Entry, LogReader, stream_id_key

_PART_RE = re.compile(r"^p(\d+)-(\d+)_(\d+)-(\d+)_(\d+)\.parquet$")

SCHEMA = pa.schema(
    [
        ("stream_id", pa.string()),
        ("partition", pa.int16()),
        ("visitor_id", pa.string()),
        ("type", pa.string()),
        ("event_id", pa.string()),
        ("timestamp", pa.float64()),
        ("event", pa.string()),
    ]
)


def exported_up_to(out_dir: Path) -> dict[int, tuple[int, int]]:
    """The last stream id already written, per partition."""
    last: dict[int, tuple[int, int]] = {}
    for path in out_dir.glob("day=*/p*.parquet"):
        m = _PART_RE.match(path.name)
        if m:
            p, end = int(m.group(1)), (int(m.group(4)), int(m.group(5)))
            last[p] = max(last.get(p, (0, 0)), end)
    return last


def _day(entry: Entry) -> str:
    ts = entry.event.get("timestamp")
    seconds = float(ts) if isinstance(ts, int | float) else entry.millis / 1000
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def write_part(out_dir: Path, day: str, partition: int, entries: list[Entry]) -> Path:
    """Write one part file atomically; return its path."""
    first, last = entries[0].id.replace("-", "_"), entries[-1].id.replace("-", "_")
    folder = out_dir / f"day={day}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"p{partition:02d}-{first}-{last}.parquet"
    table = pa.Table.from_pylist(
        [
            {
                "stream_id": e.id,
                "partition": e.partition,
                "visitor_id": e.visitor_id,
                "type": str(e.event.get("type", "")),
                "event_id": str(
                    e.event.get("event_id", e.event.get("id", e.event.get("decision_id", "")))
                ),
                "timestamp": float(e.event.get("timestamp", e.event.get("ts", 0.0))),
                "event": orjson.dumps(e.event).decode(),
            }
            for e in entries
        ],
        schema=SCHEMA,
    )
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def _runs(entries: Iterable[Entry]) -> list[tuple[int, str, list[Entry]]]:
    """Entries cut into runs of one partition and one day, contiguous in stream order.

    Contiguity matters: a part file's last id is the partition's watermark after
    a crash, so a file may never skip over an entry that a later file holds
    (events of several days interleave when clients send late timestamps).
    """
    out: list[tuple[int, str, list[Entry]]] = []
    for e in sorted(entries, key=lambda e: (e.partition, stream_id_key(e.id))):
        day = _day(e)
        if out and out[-1][0] == e.partition and out[-1][1] == day:
            out[-1][2].append(e)
        else:
            out.append((e.partition, day, [e]))
    return out


async def export_once(reader: LogReader, out_dir: Path, batch: int = 1000) -> int:
    """Export what the group has not acknowledged yet; return the entries written."""
    await reader.ensure_groups()
    done = exported_up_to(out_dir)
    written = 0
    while True:
        entries = await reader.read(batch)
        if not entries:
            return written
        fresh = [e for e in entries if stream_id_key(e.id) > done.get(e.partition, (0, 0))]
        for partition, day, group in _runs(fresh):
            write_part(out_dir, day, partition, group)
            done[partition] = max(done.get(partition, (0, 0)), stream_id_key(group[-1].id))
            written += len(group)
        await reader.ack(entries)


def read_exported(out_dir: Path, since: float) -> Iterator[dict[str, Any]]:
    """The exported entries (events and decisions) timestamped at or after ``since``.

    Day folders before the day of ``since`` are skipped without being opened;
    entries come file by file, not in time order.
    """
    first_day = time.strftime("%Y-%m-%d", time.gmtime(since))
    for folder in sorted(out_dir.glob("day=*")):
        if folder.name.removeprefix("day=") < first_day:
            continue
        for path in sorted(folder.glob("p*.parquet")):
            table = pq.read_table(path, columns=["timestamp", "event"])
            for ts, raw in zip(
                table.column("timestamp").to_pylist(),
                table.column("event").to_pylist(),
                strict=True,
            ):
                if ts is not None and ts >= since:
                    yield orjson.loads(raw)

"""State written by the kilobyte (`mini_batch`): a flush packs the partials of many keys into
a few bundle items per pane, and the closer merges a window's bundles when it closes it.

DynamoDB bills a write per item per started kilobyte, and a partial (a key's accumulator,
count and times for one pane) is ~100 bytes of JSON, half that compressed: a per-key item
would pay for a kilobyte to store a tenth of one. A bundle holds thousands.

| item      | PK                                 | SK                                  |
|-----------|------------------------------------|-------------------------------------|
| bundle    | `B#<pipeline>#v<ver>#P#<bucket>`   | `<partition>#<flushed through>#<n>` |
| progress  | `M#<pipeline>#v<ver>`              | `BUNDLED`                           |

A bucket is a pane's start (sessions: the start of a bucket of the gap, tidegate/partials.py).
The progress item holds `panes` (the buckets holding bundles), `closed` and, with `emit:
updates`, `early` and `seen` (tidegate/bundle_closer.py).

A flush is one transaction (state/store.py `write_bundles`): its bundles, the partition's
written-through position and the set of panes holding bundles, all or nothing. A retried
flush finds its position taken and writes nothing; a record at or below the position is
never folded again (tidegate/mini_batch.py). Each partial carries the first window it may
join (`first_ws`): windows already final at the shard's own watermark when it was written
never take it, whichever closer run reads it, so every window's result is the same however
the runs fall.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tidegate.state import keys
from tidegate.state.store import Item, StateStore

BUNDLED_SK = "BUNDLED"
# Well under DynamoDB's 400 KB item limit, compressed.
BUNDLE_BYTES = 300_000
# Bundles expire (TTL) this long after they are written: the closer has read them by then.
BUNDLE_RETENTION_S = 7 * 86_400

_DECIMAL_TAG = "$dec"


@dataclass(frozen=True)
class Row:
    """One key's partial of one pane."""

    key: str
    n: int
    tmin: int
    tmax: int
    # Panes: the first window (start) this partial joins. Sessions: the watermark the
    # fragment was judged at (tidegate/partials.py).
    first_ws: int
    acc: dict[str, Any]


def bundle_pk(pipeline: str, version: int, pane: int) -> str:
    return f"B#{pipeline}#v{version}#{keys.pane_sk(pane)}"


def _tagged(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {_DECIMAL_TAG: str(value)}
    raise TypeError(f"{type(value).__name__} cannot be kept in a bundle")


def _untagged(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _DECIMAL_TAG in obj:
        return Decimal(obj[_DECIMAL_TAG])
    return obj


def dumps(doc: Any) -> bytes:
    """Compressed JSON; Decimals (exact sums, values as DynamoDB returns them) travel
    tagged and come back as the same Decimal."""
    raw = json.dumps(doc, separators=(",", ":"), default=_tagged).encode("utf-8")
    return zlib.compress(raw, 6)


def loads(data: bytes) -> Any:
    return json.loads(zlib.decompress(data), object_hook=_untagged)


def bundle_items(
    pk: str, partition: str, through: str, rows: list[Row], expire_at: int,
) -> list[Item]:
    """The rows of one pane as bundle items of at most ~BUNDLE_BYTES each, keyed so that a
    retried flush of the same buffer names the same items."""
    encoded = [[r.key, r.n, r.tmin, r.tmax, r.first_ws, r.acc] for r in rows]
    return [
        {"PK": pk, "SK": f"{partition}#{through}#{i:04d}", "data": blob,
         "n": sum(row[1] for row in chunk), "expire_at": expire_at}
        for i, (chunk, blob) in enumerate(_fitting(encoded))
    ]


def _fitting(rows: list[list[Any]]) -> list[tuple[list[list[Any]], bytes]]:
    """`rows` compressed in halves until each fits BUNDLE_BYTES (compression tells the size
    only after the fact); a chunk that fits is not compressed again."""
    blob = dumps(rows)
    if len(blob) <= BUNDLE_BYTES or len(rows) == 1:
        return [(rows, blob)]
    half = len(rows) // 2
    return _fitting(rows[:half]) + _fitting(rows[half:])


def rows_of(item: Item) -> list[Row]:
    data: Any = item["data"]
    raw = data.value if hasattr(data, "value") else data  # boto3: Binary; memory: bytes
    return [Row(k, int(n), int(tmin), int(tmax), int(first), acc)
            for k, n, tmin, tmax, first, acc in loads(bytes(raw))]


def flush_of(item: Item) -> tuple[str, str]:
    """(partition, written-through position) of the flush that wrote a bundle item."""
    partition, through, _ = str(item["SK"]).rsplit("#", 2)
    return partition, through


@dataclass
class Progress:
    """The closer's `BUNDLED` item, as read at the start of a run."""

    panes: list[int] = field(default_factory=list)  # sessions: buckets
    # Panes: the end of the last window published final. Sessions: the watermark through
    # which every final session is published.
    closed: int | None = None
    # `emit: updates`: the watermark through which windows (sessions) that ended have an
    # early version out, and the partitions' positions whose flushes those versions hold.
    early: int | None = None
    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, store: StateStore, pk: str) -> Progress:
        item = store.get(pk, BUNDLED_SK) or {}
        return cls(
            panes=sorted(int(p) for p in item.get("panes", ())),
            closed=int(item["closed"]) if "closed" in item else None,
            early=int(item["early"]) if "early" in item else None,
            seen={str(k): str(v) for k, v in item.get("seen", {}).items()},
        )

    def is_new(self, flush: tuple[str, str]) -> bool:
        """Written after the flushes the last early versions held."""
        return flush[1] > self.seen.get(flush[0], "")

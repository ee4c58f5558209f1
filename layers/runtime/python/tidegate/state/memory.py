"""The state store in one process's memory (the StateStore protocol, state/store.py): for
unit tests and the bench, never for Lambda.

It keeps DynamoDB's contract, not just its shape: every write checks the condition the
DynamoDB backend's expression states and raises the same domain error when it fails; the
open-window index gives the attributes the GSI projects; reads return new copies, numbers
as `Decimal` as boto3's deserializer gives them. tests/integration/test_store_backends.py
runs the same operations on both backends.

A written item is kept as given, not copied: the ingest and the closer build a new item
for every write and never change it afterwards, and a copy per write would add to the
bench's ingest CPU a cost that DynamoDB's serialiser, measured separately, stands for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from tidegate.errors import ConditionFailedError, TransactionConflictError
from tidegate.state import keys
from tidegate.state.store import CLOSING, EMITTED, PENDING, PUBLISHED, Item
from tidegate.topology import OPEN_INDEX_PROJECTED, OPEN_PK, OPEN_SK, PK, SK, TTL_ATTRIBUTE

_Key = tuple[str, str]
_PROJECTED = (PK, SK, OPEN_PK, OPEN_SK, *OPEN_INDEX_PROJECTED)


def _read(value: Any) -> Any:
    """A stored value as DynamoDB gives it back: numbers as Decimal, containers new."""
    kind = type(value)
    if kind is dict:
        return {k: _read(v) for k, v in value.items()}
    if kind is list:
        return [_read(v) for v in value]
    if kind is int:
        return Decimal(value)
    if kind is set:
        return {_read(v) for v in value}
    return value


def _without_none(item: Item) -> Item:
    """DynamoDB stores no attribute for a None (DynamoStore drops them before writing)."""
    return {k: v for k, v in item.items() if v is not None}


def _number(value: Any) -> Decimal | None:
    return None if value is None or type(value) is bool else Decimal(value)


class MemoryStore:
    """Items by (PK, SK); safe to share between threads (a lock around each operation)."""

    def __init__(self) -> None:
        self.items: dict[_Key, Item] = {}
        self._lock = threading.Lock()

    # -- reads ---------------------------------------------------------------------------
    def get(self, pk: str, sk: str) -> Item | None:
        item = self.items.get((pk, sk))
        return None if item is None else _read(item)

    def batch_get(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        items = self.items
        return {at: _read(items[at]) for at in pairs if at in items}

    def query_range(self, pk: str, sk_from: str, sk_to: str) -> list[Item]:
        with self._lock:
            found = [(s, item) for (p, s), item in self.items.items()
                     if p == pk and sk_from <= s <= sk_to]
        return [_read(item) for _, item in sorted(found, key=lambda pair: pair[0])]

    def query_partition(self, pk: str) -> list[Item]:
        return self.query_range(pk, "", "\U0010ffff")

    def query_open(self, index_pk: str, up_to: int) -> Iterator[Item]:
        with self._lock:
            due = [item for item in self.items.values()
                   if item.get(OPEN_PK) == index_pk and item.get(OPEN_SK, up_to + 1) <= up_to]
        due.sort(key=lambda item: item[OPEN_SK])
        # The index projects these attributes only (topology.table_definition).
        return iter([_read({k: item[k] for k in _PROJECTED if k in item}) for item in due])

    def count_open(self, index_pk: str, up_to: int, limit: int) -> int:
        return min(limit, len(list(self.query_open(index_pk, up_to))))

    # -- ingest --------------------------------------------------------------------------
    def write_group(self, item: Item, expected_version: int | None) -> None:
        at = (item[PK], item[SK])
        with self._lock:
            current = self.items.get(at)
            if (current is not None if expected_version is None
                    else current is None or current.get("ver") != expected_version):
                raise ConditionFailedError(f"{at[0]} {at[1]}: written since read")
            # Once per group written: the item itself unless it has a None to drop.
            self.items[at] = item if None not in item.values() else _without_none(item)

    # -- watermarks ----------------------------------------------------------------------
    def advance_partition_watermark(
        self, pk: str, sk: str, watermark: int, max_event_ms: int, now_ms: int,
        position: str | None,
    ) -> None:
        def holds(item: Item) -> bool:
            return _absent_or(item, "wm", lambda wm: wm <= watermark) and (
                position is None or _absent_or(item, "pos", lambda pos: pos <= position)
            )

        sets: dict[str, Any] = {"wm": watermark, "max_t": max_event_ms, "last_seen": now_ms}
        if position is not None:
            sets["pos"] = position
        self._update(pk, sk, holds, sets, removes=["pending"])

    def hold_partition_watermark(self, pk: str, sk: str, pending_ms: int, now_ms: int) -> None:
        self._update(
            pk, sk, lambda item: _absent_or(item, "pending", lambda t: t < pending_ms),
            {"pending": pending_ms, "last_seen": now_ms},
        )

    def touch_partition(
        self, pk: str, sk: str, now_ms: int, clear_pending: bool, position: str | None = None
    ) -> None:
        removes = ["pending"] if clear_pending else []
        if position is None:
            self._update(pk, sk, None, {"last_seen": now_ms}, removes)
            return
        self._update(
            pk, sk, lambda item: _absent_or(item, "pos", lambda pos: pos <= position),
            {"last_seen": now_ms, "pos": position}, removes,
        )

    def record_position(self, pk: str, sk: str, position: str) -> None:
        self._update(
            pk, sk, lambda item: _absent_or(item, "pos", lambda pos: pos < position),
            {"pos": position},
        )

    def advance_pipeline_watermark(self, pk: str, sk: str, watermark: int) -> None:
        self._update(
            pk, sk, lambda item: _absent_or(item, "wm", lambda wm: wm < watermark),
            {"wm": watermark},
        )

    # -- pane windows --------------------------------------------------------------------
    def freeze_pane(
        self, pk: str, sk: str, window_start: int, unread: bool = False
    ) -> Item | None:
        acc_attr, n_attr = keys.snapshot_attrs(window_start)

        def holds(item: Item) -> bool:
            return bool(item) and acc_attr not in item and (
                not unread or (_compare(item, "first_ws", lambda v: v <= window_start)
                               and _compare(item, "next_ws", lambda v: v <= window_start))
            )

        def change(item: Item) -> None:
            item[acc_attr], item[n_attr] = item["acc"], item["n"]
            item["ver"] = item["ver"] + 1

        try:
            frozen: Item = _read(self._update(pk, sk, holds, change=change))
            return frozen
        except ConditionFailedError as lost:
            return lost.current

    def move_pane_on(
        self, pk: str, sk: str, window_start: int, next_window: int, released: list[int],
        next_check_at: int | None, expire_at: int,
    ) -> None:
        removes = [attr for ws in released for attr in keys.snapshot_attrs(ws)]
        sets: dict[str, Any] = {"next_ws": next_window}
        if next_check_at is None:
            removes += [OPEN_PK, OPEN_SK]
            sets[TTL_ATTRIBUTE] = expire_at
        else:
            sets[OPEN_SK] = next_check_at

        def change(item: Item) -> None:
            item["ver"] = item["ver"] + 1

        self._update(
            pk, sk, lambda item: _compare(item, "next_ws", lambda v: v <= window_start),
            sets, removes, change,
        )

    # -- window results ------------------------------------------------------------------
    def create_once(self, item: Item) -> None:
        at = (item[PK], item[SK])
        with self._lock:
            current = self.items.get(at)
            if current is not None:
                raise ConditionFailedError(f"{at[0]} {at[1]}: exists already", _read(current))
            self.items[at] = _without_none(item)

    def claim_next_version(
        self, pk: str, sk: str, state: str, result_json: str, n: int, version: int
    ) -> None:
        self._update(
            pk, sk,
            lambda item: item.get("state") == PUBLISHED
            and _number(item.get("version")) == version - 1,
            {"state": state, "result_json": result_json, "n": n, "version": version},
        )

    def mark_emitted(self, pk: str, sk: str, expire_at: int) -> None:
        self._update(
            pk, sk, lambda item: item.get("state") == CLOSING,
            {"state": EMITTED, TTL_ATTRIBUTE: expire_at}, [OPEN_PK, OPEN_SK],
        )

    def mark_published(self, pk: str, sk: str, version: int) -> None:
        self._update(
            pk, sk,
            lambda item: item.get("state") == PENDING and _number(item.get("version")) == version,
            {"state": PUBLISHED}, [OPEN_PK, OPEN_SK],
        )

    # -- sessions ------------------------------------------------------------------------
    def write_bundles(
        self, bundles: list[Item], meta_pk: str, partition_sk: str, through: str, top: int,
        now_ms: int, panes_sk: str, panes: list[int],
    ) -> None:
        with self._lock:
            mark = self.items.get((meta_pk, partition_sk)) or {}
            if any((b[PK], b[SK]) in self.items for b in bundles) or (
                "pos" in mark and not mark["pos"] < through
            ):
                raise TransactionConflictError(
                    f"{meta_pk} {partition_sk}: flushed through {through} already")
            for bundle in bundles:
                self.items[(bundle[PK], bundle[SK])] = _without_none(bundle)
            self.items[(meta_pk, partition_sk)] = {
                PK: meta_pk, SK: partition_sk, **mark, "pos": through, "ftop": top,
                "last_seen": now_ms}
            if panes:
                held = self.items.get((meta_pk, panes_sk)) or {PK: meta_pk, SK: panes_sk}
                self.items[(meta_pk, panes_sk)] = {
                    **held, "panes": set(held.get("panes", set())) | set(panes)}

    def advance_bundle_progress(
        self, pk: str, sk: str, closed_through: int | None, expected: int | None,
        done: list[int], early: int | None = None, seen: dict[str, str] | None = None,
    ) -> None:
        def holds(item: Item) -> bool:
            if expected is None:
                return "closed" not in item
            return _number(item.get("closed")) == expected

        def change(item: Item) -> None:
            left = set(item.get("panes", set())) - set(done)
            if left:
                item["panes"] = left
            else:
                item.pop("panes", None)  # DynamoDB drops an emptied set

        sets = {name: value for name, value in
                (("closed", closed_through), ("early", early), ("seen", seen))
                if value is not None}
        self._update(pk, sk, holds, sets, change=change)

    def keep_until(self, pk: str, sk: str, expire_at: int) -> None:
        with self._lock:
            item = self.items.get((pk, sk))
            if item is not None and _absent_or(item, TTL_ATTRIBUTE, lambda t: t < expire_at):
                self.items[(pk, sk)] = {**item, TTL_ATTRIBUTE: expire_at}

    def close_sessions(
        self, pk: str, sk: str, expected_version: int, results: list[Item],
        remaining: list[dict[str, Any]], remaining_n: int, next_check_at: int | None,
    ) -> None:
        with self._lock:
            current = self.items.get((pk, sk))
            if (
                any((r[PK], r[SK]) in self.items for r in results)
                or current is None
                or _number(current.get("ver")) != expected_version
            ):
                raise TransactionConflictError(f"{pk}: sessions changed while closing")
            for result in results:
                self.items[(result[PK], result[SK])] = _without_none(result)
            item = dict(current)
            item.update(sessions=remaining, n=remaining_n, ver=current["ver"] + 1)
            if next_check_at is None:
                item.pop(OPEN_PK, None)
                item.pop(OPEN_SK, None)
            else:
                item[OPEN_SK] = next_check_at
            self.items[(pk, sk)] = item

    # -- state versions ------------------------------------------------------------------
    def switch_active_version(
        self, pk: str, sk: str, from_version: int, to_version: int,
        handover: dict[str, Any], now_ms: int, watermark_pk: str, watermark_sk: str,
        handover_watermark: int | None,
    ) -> None:
        with self._lock:
            meta = self.items.get((watermark_pk, watermark_sk)) or {}
            stored_wm = _number(meta.get("wm"))
            current = self.items.get((pk, sk))
            if (
                (stored_wm is not None if handover_watermark is None
                 else stored_wm != handover_watermark)
                or current is None
                or _number(current.get("active")) != from_version
            ):
                raise TransactionConflictError(f"{pk}: active version or its watermark moved")
            self.items[(pk, sk)] = {**current, "active": to_version, "handover": handover,
                                    "switched_at": now_ms}

    def expire_items(self, pk_prefix: str, pk: str, expire_at: int) -> int:
        count = 0
        with self._lock:
            for at, item in list(self.items.items()):
                if not (at[0].startswith(pk_prefix) or at[0] == pk):
                    continue
                if _absent_or(item, TTL_ATTRIBUTE, lambda t: t > expire_at):
                    self.items[at] = {**item, TTL_ATTRIBUTE: expire_at}
                    count += 1
        return count

    # -- one item ------------------------------------------------------------------------
    def _update(
        self, pk: str, sk: str, holds: Callable[[Item], bool] | None,
        sets: dict[str, Any] | None = None, removes: list[str] | None = None,
        change: Callable[[Item], None] | None = None,
    ) -> Item:
        """UpdateItem: `holds` (given the item, {} when there is none) must be true; then
        `sets`, `removes` and `change` apply to the item, created when absent. Returns the
        new item as stored (the caller reads it with `_read` if it hands it out);
        ConditionFailedError carries the item as it stood (None: none)."""
        with self._lock:
            current = self.items.get((pk, sk))
            if holds is not None and not holds(current or {}):
                raise ConditionFailedError(
                    f"{pk} {sk}: condition not met", None if current is None else _read(current)
                )
            item = {PK: pk, SK: sk} if current is None else dict(current)
            item.update(sets or {})
            for name in removes or ():
                item.pop(name, None)
            if change is not None:
                change(item)
            self.items[(pk, sk)] = item
            return item


def _compare(item: Item, name: str, test: Callable[[Any], bool]) -> bool:
    """DynamoDB's comparison in a condition: false when the attribute is absent."""
    return name in item and bool(test(item[name]))


def _absent_or(item: Item, name: str, test: Callable[[Any], bool]) -> bool:
    return name not in item or bool(test(item[name]))


__all__ = ["MemoryStore"]

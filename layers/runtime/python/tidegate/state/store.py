"""The state store as the ingest, the watermarks, the closers and the version switch use it.

Items are plain dicts keyed by `PK` and `SK` (state/keys.py names them). Every write is
conditional on what its caller read or expects; a write whose condition does not hold
raises a domain error (tidegate.errors) and changes nothing:

* `ConditionFailedError` for one item, carrying the item as it stands when the backend has it;
* `TransactionConflictError` for a write of several items, none of which applied.

Backends: state/dynamodb.py (the product path) and state/memory.py (unit tests and the
bench). Both keep the same contract, and a test runs the same operations on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

Item = dict[str, Any]

# A window result's states. Final: CLOSING (claimed, result fixed) -> EMITTED. An early
# version (`emit: updates`): PENDING -> PUBLISHED, then the next version or CLOSING.
CLOSING = "CLOSING"
EMITTED = "EMITTED"
PENDING = "PENDING"
PUBLISHED = "PUBLISHED"


class StateStore(Protocol):
    # -- reads (strongly consistent, except the open-window index) ----------------------
    def get(self, pk: str, sk: str) -> Item | None:
        """One item, None when there is none."""
        ...

    def batch_get(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        """The items that exist among `pairs`, by (PK, SK)."""
        ...

    def query_range(self, pk: str, sk_from: str, sk_to: str) -> list[Item]:
        """Items of one partition with `sk_from <= SK <= sk_to`, in SK order."""
        ...

    def query_partition(self, pk: str) -> list[Item]:
        """Every item of one partition, in SK order."""
        ...

    def query_open(self, index_pk: str, up_to: int) -> Iterator[Item]:
        """Open-window index: items of one index partition due at or before `up_to`
        (`open_sk`), in that order. Eventually consistent, as a DynamoDB GSI is."""
        ...

    def count_open(self, index_pk: str, up_to: int, limit: int) -> int:
        """How many items `query_open` would give, counting no further than `limit`."""
        ...

    # -- ingest --------------------------------------------------------------------------
    def write_group(self, item: Item, expected_version: int | None) -> None:
        """Replace a pane or open-sessions item with a batch group merged in, if its `ver`
        is still `expected_version` (None: the item must not exist yet).
        Raises ConditionFailedError when another writer got there first: re-read and judge again."""
        ...

    # -- watermarks ----------------------------------------------------------------------
    def advance_partition_watermark(
        self, pk: str, sk: str, watermark: int, max_event_ms: int, now_ms: int,
        position: str | None,
    ) -> None:
        """Set a partition's watermark, max event time and last-seen time, and clear its
        pending time, unless its watermark (or, given `position`, its read position) is
        already higher. Raises ConditionFailedError then."""
        ...

    def hold_partition_watermark(self, pk: str, sk: str, pending_ms: int, now_ms: int) -> None:
        """Record `pending_ms` (what a failed batch applied) unless a later one is recorded.
        Raises ConditionFailedError then."""
        ...

    def touch_partition(
        self, pk: str, sk: str, now_ms: int, clear_pending: bool, position: str | None = None
    ) -> None:
        """Record that the partition is alive at `now_ms`. Given `position`, also move the
        read position there, and raise ConditionFailedError (changing nothing) when it is
        already further."""
        ...

    def record_position(self, pk: str, sk: str, position: str) -> None:
        """Move the read position forward to `position`; ConditionFailedError when it is not
        further than the stored one."""
        ...

    def advance_pipeline_watermark(self, pk: str, sk: str, watermark: int) -> None:
        """Store the pipeline watermark unless a higher or equal one is stored. Raises
        ConditionFailedError, carrying the item, then."""
        ...

    # -- pane windows --------------------------------------------------------------------
    def freeze_pane(
        self, pk: str, sk: str, window_start: int, unread: bool = False
    ) -> Item | None:
        """Copy the pane's live content into its snapshot for the window at `window_start`
        unless it has one, bumping `ver`. `unread`: the caller has not read the pane, so
        freeze it only if it contributes to the window (`first_ws` and `next_ws` at or
        below it). Returns the pane as it stands either way; None when there is no pane."""
        ...

    def move_pane_on(
        self, pk: str, sk: str, window_start: int, next_window: int, released: list[int],
        next_check_at: int | None, expire_at: int,
    ) -> None:
        """After the window at `window_start` completed: `next_ws` becomes `next_window`,
        the snapshots of the windows in `released` go; with `next_check_at` the pane is
        due again then, without it the pane leaves the open-window index and expires at
        `expire_at`. ConditionFailedError when the pane is already past the window."""
        ...

    # -- window results ------------------------------------------------------------------
    def create_once(self, item: Item) -> None:
        """Write an item that is written once (a window's first claim, the active-version
        record, a redrive ledger entry). Raises ConditionFailedError carrying the item that
        exists."""
        ...

    def claim_next_version(
        self, pk: str, sk: str, state: str, result_json: str, n: int, version: int
    ) -> None:
        """Claim `version` of a window (as `state`, CLOSING or PENDING) whose version
        `version - 1` is PUBLISHED.
        Raises ConditionFailedError carrying the item as it stands otherwise."""
        ...

    def mark_emitted(self, pk: str, sk: str, expire_at: int) -> None:
        """A final result is out: CLOSING -> EMITTED, out of the index, expiring at
        `expire_at`. ConditionFailedError when it is not CLOSING (marked already)."""
        ...

    def mark_published(self, pk: str, sk: str, version: int) -> None:
        """An early version is out: PENDING -> PUBLISHED, out of the index.
        ConditionFailedError when that version is no longer the pending one."""
        ...

    # -- sessions ------------------------------------------------------------------------
    def close_sessions(
        self, pk: str, sk: str, expected_version: int, results: list[Item],
        remaining: list[dict[str, Any]], remaining_n: int, next_check_at: int | None,
    ) -> None:
        """In one transaction: create each result item (written once), and leave the
        open-sessions item with `remaining` (due again at `next_check_at`; None: out of
        the index) if its `ver` is still `expected_version`. Raises TransactionConflictError."""
        ...

    # -- mini-batch bundles (tidegate/bundles.py) --------------------------------------
    def write_bundles(
        self, bundles: list[Item], meta_pk: str, partition_sk: str, through: str, top: int,
        now_ms: int, panes_sk: str, panes: list[int],
    ) -> None:
        """In one transaction: create each bundle (written once), move the partition's
        written-through position (`pos`) to `through` and record the flush's highest event
        time (`ftop`), and add `panes` to the set of panes holding bundles. Raises
        TransactionConflictError, changing nothing, when the position is already at or past
        `through` or a bundle exists (a retried flush)."""
        ...

    def advance_bundle_progress(
        self, pk: str, sk: str, closed_through: int | None, expected: int | None,
        done: list[int], early: int | None = None, seen: dict[str, str] | None = None,
    ) -> None:
        """The bundle closer's progress: windows ending at or before `closed_through` are
        published (None: leave it); `done` leave the set of panes; `early` and `seen`, when
        given, replace the `emit: updates` progress. ConditionFailedError when the stored
        progress is no longer `expected` (None: none stored): another closer got there."""
        ...

    def keep_until(self, pk: str, sk: str, expire_at: int) -> None:
        """Raise an existing item's expiry to `expire_at` (never lowers it; an item gone is
        not recreated): bundles of a session that outlasts their retention."""
        ...

    # -- state versions ------------------------------------------------------------------
    def switch_active_version(
        self, pk: str, sk: str, from_version: int, to_version: int,
        handover: dict[str, Any], now_ms: int, watermark_pk: str, watermark_sk: str,
        handover_watermark: int | None,
    ) -> None:
        """Make `to_version` active if `from_version` still is and the outgoing version's
        pipeline watermark (`watermark_pk`/`watermark_sk`) is still `handover_watermark`
        (None: none stored). Raises TransactionConflictError."""
        ...

    def expire_items(self, pk_prefix: str, pk: str, expire_at: int) -> int:
        """Give every item whose PK starts with `pk_prefix` or is `pk` an expiry of at most
        `expire_at`; returns how many were set. A scan: an operator's tool, never the
        ingest's or the closer's."""
        ...

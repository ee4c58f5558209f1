"""Mini-batch pre-aggregation (`mini_batch: {allow_latency: ...}`): a shard's batches are
folded into partials per (key, pane), or per key and session fragment (the window kind's
rules: tidegate/partials.py), that Lambda's event source mapping carries between
invocations (its tumbling window, up to 1 MB of state per shard), and written once, on the
window's final invocation.

A state item is then written once per key-pane per `allow_latency` instead of once per
key-pane per batch: at 1,000 events/s a minute of the standard workload has about 6,000
key-panes in 60 batches of 1,000 that would each write about 400.

What stays exact:

* A record is folded at most once: the buffer keeps, per partition, the highest position it
  folded (`through`), and the partition's watermark item the position written through
  (`pos`); a record at or below either was folded before and is skipped. A failed
  invocation is retried by Lambda with the state of the last one that succeeded.
* A flush is idempotent: its bundles (tidegate/bundles.py) and the partition's
  written-through position go in one transaction, so a retried flush (the event source
  mapping retries the final invocation with the same state until it succeeds) finds the
  position taken and writes nothing.
* The partition's watermark advances only on a flush, to the highest event time written,
  after the writes. Until then the shard holds the pipeline watermark where it was, so no
  window a buffered partial belongs to can close before the partial is written, provided
  the shard does not turn idle meanwhile (`allow_latency` < `watermark.idle_timeout`,
  enforced by the spec; each invocation marks the shard alive).
* Lateness is judged at fold time against the shard's own watermark, which the pipeline
  watermark cannot pass before the flush: an event is late when every window of its pane
  is final there (sessions: when the session its events form in the buffer is). This is
  stricter than without mini-batch (the pipeline watermark, the
  minimum over shards, may be lower) only for events behind their own shard's watermark.
* Poison records go to the dead-letter queue and late records to the late queue at once,
  before the invocation answers.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tidegate import bundles
from tidegate.dlq import dead_letter
from tidegate.errors import OutputRefusedError, TransactionConflictError
from tidegate.partials import PaneFold, Partial, Partials, SessionFold
from tidegate.rejections import LATE
from tidegate.schemas.decode import DecodedBatch
from tidegate.sources.records import SourceBatch
from tidegate.state import keys
from tidegate.state.keys import POSITION_WIDTH
from tidegate.watermark import MIN_WATERMARK, WatermarkState
from tidegate.windows.panes import PaneState
from tidegate.windows.session import SessionState

if TYPE_CHECKING:
    from tidegate.ingest import BatchOutcome, Ingestor

# The event source mapping ends a window early past 1 MB of state; flush before that.
FLUSH_STATE_BYTES = 800_000
_STATE_KEY = "tg"
_FORMAT = 1


@dataclass
class Buffer:
    """What the event source mapping carries between a shard's invocations."""

    # Partition -> the highest position mark folded (kept across an early flush).
    through: dict[str, str] = field(default_factory=dict)
    # Partition -> the highest event time folded and not yet written.
    top: dict[str, int] = field(default_factory=dict)
    partials: Partials = field(default_factory=dict)
    # Redrive ids (tidegate/redrive.py) of the redriven records folded and not yet written.
    redriven: set[str] = field(default_factory=set)

    def encode(self) -> dict[str, str]:
        """As Lambda passes state: a map of strings. Compressed: partials of many keys
        repeat field names and key prefixes, and the 1 MB bound is on these bytes."""
        doc = {
            "v": _FORMAT,
            "through": self.through,
            "top": self.top,
            "partials": [[k, pane, p.n, p.tmin, p.tmax, p.acc]
                         for (k, pane), p in self.partials.items()],
            "redriven": sorted(self.redriven),
        }
        return {_STATE_KEY: base64.b64encode(bundles.dumps(doc)).decode("ascii")}

    @classmethod
    def decode(cls, state: dict[str, Any] | None) -> Buffer:
        text = (state or {}).get(_STATE_KEY)
        if not text:
            return cls()
        doc = bundles.loads(base64.b64decode(text))
        if doc.get("v") != _FORMAT:
            raise ValueError(f"mini-batch state format {doc.get('v')!r} is not {_FORMAT}")
        return cls(
            through=dict(doc["through"]),
            top={p: int(t) for p, t in doc["top"].items()},
            partials={(k, int(pane)): Partial(acc, int(n), int(tmin), int(tmax))
                      for k, pane, n, tmin, tmax, acc in doc["partials"]},
            redriven=set(doc.get("redriven", ())),
        )


_LEDGER_PREFIX = "RD#"


def redrive_ledger_sk(redrive_id: str) -> str:
    return _LEDGER_PREFIX + redrive_id


def _judged_at(marks: WatermarkState, watermark: int, partition: str) -> int:
    """Where a shard's buffered partials are judged: where the pipeline watermark may be
    when they are written, which is at most the shard's own watermark (held until then)."""
    own = marks.partitions.get(partition)
    return max(watermark, own.watermark if own else MIN_WATERMARK)


def is_window_event(event: dict[str, Any]) -> bool:
    """An invocation of an event source mapping with a tumbling window."""
    return "isFinalInvokeForWindow" in event and "window" in event


class MiniBatch:
    """Folds batches into a `Buffer` and writes it; the decoding, dead letters, late output,
    store and watermarks are the `Ingestor`'s."""

    def __init__(self, ingest: Ingestor) -> None:
        self.ingest = ingest
        windows = ingest.windows
        self.rules: PaneFold | SessionFold
        if isinstance(windows, PaneState):
            self.rules = PaneFold(windows)
        elif isinstance(windows, SessionState):
            self.rules = SessionFold(windows)
        else:
            raise TypeError(f"no mini-batch rules for {type(windows).__name__}")

    def process(
        self, records: SourceBatch, state: dict[str, Any] | None, final: bool,
        outcome: BatchOutcome,
    ) -> dict[str, str]:
        """Fold `records` into the buffer `state` holds; on the window's final invocation
        (or a buffer near Lambda's bound) write it. Returns the state to hand back."""
        buffer = Buffer.decode(state)
        now, marks, watermark = self.ingest.batch_start()
        outcome.watermark = watermark
        self._forget_written(buffer, marks, now)
        if records:
            self._fold(records, buffer, marks, watermark, now, outcome)
        if final or (buffer.partials and len(buffer.encode()[_STATE_KEY]) > FLUSH_STATE_BYTES):
            self._flush(buffer, marks, watermark, now, outcome)
            if final:
                return {}
        return buffer.encode()

    def _forget_written(self, buffer: Buffer, marks: WatermarkState, now: int) -> None:
        """A buffer whose flush committed but whose invocation then failed comes back with
        the retry (Lambda hands back the last state it got): the partition's position says
        it was written, and the watermark catches up with what that flush held."""
        for partition, folded in buffer.through.items():
            mark = marks.partitions.get(partition)
            if mark is None or mark.position is None:
                continue
            if mark.position >= folded.zfill(POSITION_WIDTH):
                buffer.partials.clear()
                buffer.top.clear()
                buffer.redriven.clear()
            top = mark.flushed_top
            delay = self.ingest.pipeline.watermark.delay
            if top is not None and top - delay > mark.watermark:
                self.ingest.watermarks.advance_partition(partition, top - delay, top, now)

    # -- folding ---------------------------------------------------------------------------
    def _fold(
        self, records: SourceBatch, buffer: Buffer, marks: WatermarkState, watermark: int,
        now: int,
        outcome: BatchOutcome,
    ) -> None:
        ingest = self.ingest
        batch = ingest.decoder.decode_batch(records)
        columns = batch.columns
        if len(set(buffer.through) | set(columns.partitions)) > 1:
            # The mapping keeps a tumbling window's state per shard.
            raise ValueError("a mini-batch buffer holds the records of one partition")
        # Folded before: at or below what this buffer folded or what was written.
        seen: dict[str, str] = {}
        for partition in set(columns.partitions):
            mark = marks.partitions.get(partition)
            written = (mark.position or "") if mark else ""
            seen[partition] = max(written, buffer.through.get(partition, ""))
        fresh: list[int] = []
        for i, partition in enumerate(columns.partitions):
            if columns.mark(i) <= seen[partition]:
                outcome.duplicates_skipped += 1
            elif batch.keys[i] is not None:
                fresh.append(i)
        if batch.redriven:
            fresh = self._first_copies(batch, fresh, buffer, outcome)
        fresh_set = set(fresh)
        rejected = [(i, rej) for i, rej in batch.rejected if columns.mark(i) > seen[
            columns.partitions[i]]]
        if rejected:
            dead = [dead_letter(ingest.pipeline.name, batch.record(i), rej.reason, rej.detail)
                    for i, rej in rejected]
            if ingest.dead_letters.send(dead):
                raise OutputRefusedError("the dead-letter queue refused some records")
            outcome.dead_lettered += len(rejected)

        judge_at = {p: _judged_at(marks, watermark, p) for p in seen}
        late: dict[int, list[int]] = {}
        self.rules.begin(buffer.partials)
        for group in ingest.grouped(batch):
            indices = [i for i in group.indices if i in fresh_set]
            if not indices:
                continue
            partition = columns.partitions[indices[0]]
            at_watermark = judge_at[partition]
            late_ones = self.rules.fold(buffer.partials, group, indices, at_watermark)
            if late_ones:
                late.setdefault(at_watermark, []).extend(late_ones)
                late_set = set(late_ones)
                indices = [i for i in indices if i not in late_set]
                if not indices:
                    continue
            outcome.buffered += len(indices)
            top = max(group.times(indices))
            if top > buffer.top.get(partition, MIN_WATERMARK):
                buffer.top[partition] = top
        for at_watermark, indices in sorted(late.items()):
            ingest.send_late(batch, sorted(indices), at_watermark)
            outcome.late += len(indices)
        for partition in set(columns.partitions):  # one: checked above
            # Marks order as their positions across the batch: the highest, padded once.
            top_mark = max(columns.marks).zfill(POSITION_WIDTH)
            if top_mark > buffer.through.get(partition, ""):
                buffer.through[partition] = top_mark
            # Alive, so the shard is not taken for idle while it holds partials: a write
            # when a quarter of the idle timeout has passed since the last, not per batch.
            mark = marks.partitions.get(partition)
            every = ingest.pipeline.watermark.idle_timeout // 4
            if mark is None or now - mark.last_seen_ms >= every:
                ingest.watermarks.touch_partition(partition, now)

    def _first_copies(
        self, batch: DecodedBatch, fresh: list[int], buffer: Buffer, outcome: BatchOutcome,
    ) -> list[int]:
        """A redriven dead letter comes back with a new position, so positions cannot tell
        a second copy of it: its redrive id can. Copies this buffer folded, or an earlier
        flush wrote (its ledger item), are left out, and the rest are remembered."""
        ids = {i: batch.record(i).redrive_id for i in fresh if i in batch.redriven}
        pk = self.ingest.watermarks.pk
        ledger = self.ingest.store.batch_get(
            [(pk, redrive_ledger_sk(rid)) for rid in set(ids.values()) if rid])
        written = {sk.removeprefix(_LEDGER_PREFIX) for _, sk in ledger}
        kept: list[int] = []
        for i in fresh:
            rid = ids.get(i)
            if rid is not None and (rid in buffer.redriven or rid in written):
                outcome.duplicates_skipped += 1
                continue
            if rid is not None:
                buffer.redriven.add(rid)
            kept.append(i)
        return kept

    # -- writing ---------------------------------------------------------------------------
    def _flush(
        self, buffer: Buffer, marks: WatermarkState, watermark: int, now: int,
        outcome: BatchOutcome,
    ) -> None:
        """Write the buffer as bundles, one transaction per partition (a buffer holds one:
        the shard's), then let the partition's watermark pass what was written."""
        ingest = self.ingest
        pipeline = ingest.pipeline
        delay = pipeline.watermark.delay
        for partition, folded in sorted(buffer.through.items()):
            through = folded.zfill(POSITION_WIDTH)
            judge_at = _judged_at(marks, watermark, partition)
            rows, late = self.rules.rows(buffer.partials, judge_at)
            expire_at = now // 1000 + max(
                bundles.BUNDLE_RETENTION_S, self.rules.retention_ms // 1000 + 86_400)
            items = [
                item
                for pane, pane_rows in sorted(rows.items())
                for item in bundles.bundle_items(
                    bundles.bundle_pk(pipeline.name, pipeline.state_version, pane),
                    partition, through, pane_rows, expire_at)
            ]
            # The redrive ids folded, written with the bundles: a later copy is skipped.
            items += [{"PK": ingest.watermarks.pk, "SK": redrive_ledger_sk(rid),
                       "expire_at": expire_at} for rid in sorted(buffer.redriven)]
            top = buffer.top.get(partition)
            written = self._write(items, partition, through,
                                  MIN_WATERMARK if top is None else top, now, sorted(rows))
            if not written:
                # Written by an earlier attempt of this flush, which then failed: its
                # position is taken, and nothing more is written.
                outcome.duplicates_skipped += sum(p.n for p in buffer.partials.values())
            else:
                outcome.aggregated += sum(r.n for pane_rows in rows.values() for r in pane_rows)
                outcome.groups_written += len(items) - len(buffer.redriven)
                if late:
                    self._send_late_partials(late, judge_at)
                    outcome.late += sum(p.n for _, p in late)
            # Written: now the shard's watermark may pass the partials' windows.
            if top is None:
                ingest.watermarks.touch_partition(partition, now, position=through)
            else:
                ingest.watermarks.advance_partition(partition, top - delay, top, now, through)
        buffer.partials.clear()
        buffer.top.clear()
        buffer.redriven.clear()

    def _write(
        self, items: list[dict[str, Any]], partition: str, through: str, top: int, now: int,
        panes: list[int],
    ) -> bool:
        """The flush's transaction; False when an earlier attempt of it committed."""
        store, pk = self.ingest.store, self.ingest.watermarks.pk
        try:
            store.write_bundles(items, pk, keys.watermark_sk(partition), through, top, now,
                                bundles.BUNDLED_SK, panes)
            return True
        except TransactionConflictError:
            mark = store.get(pk, keys.watermark_sk(partition)) or {}
            if str(mark.get("pos", "")) >= through:
                return False
        # Not this flush's position: a redrive ledger entry another shard wrote meanwhile
        # (copies of one dead letter redriven onto two shards). Its records are folded
        # already; the entry exists, so write the rest.
        ledger = [(i["PK"], i["SK"]) for i in items if i["SK"].startswith(_LEDGER_PREFIX)]
        taken = set(store.batch_get(ledger))
        store.write_bundles([i for i in items if (i["PK"], i["SK"]) not in taken], pk,
                            keys.watermark_sk(partition), through, top, now,
                            bundles.BUNDLED_SK, panes)
        return True

    def _send_late_partials(self, late: list[tuple[str, Partial]], watermark: int) -> None:
        """Partials whose every window closed before they were written (only when a shard
        was taken for idle while it held them): not one event lost without a trace."""
        name = self.ingest.pipeline.name
        messages = [
            {
                "pipeline": name,
                "reason": LATE,
                "detail": f"a mini-batch partial of {p.n} events (event times {p.tmin}.."
                          f"{p.tmax}) reached state after every window of it was final at "
                          f"watermark {watermark}",
                "key": key,
                "events": p.n,
                "event_time_ms": p.tmin,
            }
            for key, p in late
        ]
        if self.ingest.late_output.send(messages):
            raise OutputRefusedError("late output refused some partials")

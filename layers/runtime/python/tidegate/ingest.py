"""One batch of source records -> window state, dead letters and late records.

Exactly-once effect on the aggregates, with at-least-once delivery:

* The batch is grouped by state item — (key, pane) for tumbling and sliding windows, (key)
  for sessions — and merged in memory; each group is written with one conditional put that
  also raises that item's high-water mark (`hw`) per source partition.
* A redelivered record at or below its item's mark was applied before and is skipped.
  Marks are per item, not per partition: Lambda resumes from the LOWEST reported failure
  and redelivers records that succeeded after it, and only per-item marks tell which.
* Records are judged late against the pipeline watermark as it stood when the batch began;
  the window kind decides what that means (windows/panes.py, windows/session.py). A final
  window never changes, even before the closer has published it.
* Only a completed batch raises its partition's watermark, so a retried record is judged
  against the same watermark it would have been the first time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tidegate import redrive
from tidegate.aws import retry_budget
from tidegate.dlq import QueueOutput, dead_letter
from tidegate.errors import ConditionFailedError, OutputRefusedError, TooManyConflictsError
from tidegate.gc_pause import collector_paused
from tidegate.in_flight import each_in_flight
from tidegate.rejections import LATE
from tidegate.schemas.decode import DecodedBatch, JsonDecoder
from tidegate.sources.records import RecordBatch, SourceRecord, batch_of
from tidegate.spec import Pipeline
from tidegate.state.keys import POSITION_WIDTH
from tidegate.state.protocol import Group, Verdict, WindowState
from tidegate.state.store import StateStore
from tidegate.watermark import MIN_WATERMARK, WatermarkState, WatermarkStore

_MAX_CONFLICT_RETRIES = 8
# Lambda's remaining time: below _STOP_MS no new group is started; retries of AWS calls stop
# _REPORT_MS before the end, leaving time to send dead letters and answer Lambda.
_STOP_MS = 4_000
_REPORT_MS = 2_500


@contextmanager
def _invocation(time_left_ms: Callable[[], int] | None) -> Iterator[None]:
    """An invocation's work: AWS retries stop _REPORT_MS before Lambda's time is up (when
    the context says how much is left), and the collector waits until the batch is done."""
    budget_s = None if time_left_ms is None else (time_left_ms() - _REPORT_MS) / 1000
    with retry_budget(budget_s), collector_paused():
        yield


@dataclass
class BatchOutcome:
    records: int = 0
    aggregated: int = 0
    late: int = 0
    dead_lettered: int = 0
    duplicates_skipped: int = 0
    groups_written: int = 0
    # Records folded into a mini-batch buffer (tidegate/mini_batch.py), written later.
    buffered: int = 0
    watermark: int = MIN_WATERMARK
    failed: list[SourceRecord] = field(default_factory=list)


class Ingestor:
    """The ingest function's work, independent of the Lambda event shape: the source gives
    a batch (`sources.records_of`), the decoder turns it into columns (`decode_batch`), and
    this groups them, writes each group, and advances the watermarks, each once."""

    def __init__(
        self,
        pipeline: Pipeline,
        decoder: JsonDecoder,
        windows: WindowState,
        store: StateStore,
        watermarks: WatermarkStore,
        dead_letters: QueueOutput,
        late_output: QueueOutput,
        expected_partitions: Callable[[], list[str]],
        now_ms: Callable[[], int],
        write_concurrency: int = 1,
    ) -> None:
        self.pipeline = pipeline
        self.decoder = decoder
        self.windows = windows
        self.store = store
        self.watermarks = watermarks
        self.dead_letters = dead_letters
        self.late_output = late_output
        self.expected_partitions = expected_partitions
        self.now_ms = now_ms
        self.write_concurrency = write_concurrency

    # -- the batch ---------------------------------------------------------------------
    def process_window(
        self, records: Sequence[SourceRecord], state: dict[str, Any] | None, final: bool,
        time_left_ms: Callable[[], int] | None = None,
    ) -> tuple[BatchOutcome, dict[str, str]]:
        """One invocation of an event source mapping with a tumbling window (`mini_batch`):
        the batch folded into the window's `state`; the state to hand back."""
        from tidegate.mini_batch import MiniBatch

        outcome = BatchOutcome(records=len(records))
        with _invocation(time_left_ms):
            new_state = MiniBatch(self).process(batch_of(records), state, final, outcome)
        return outcome, new_state

    def process(
        self, records: Sequence[SourceRecord], time_left_ms: Callable[[], int] | None = None
    ) -> BatchOutcome:
        """Process one batch; with `time_left_ms` (the Lambda context's), AWS retries stop
        and the rest of the batch is reported failed before the function would time out."""
        with _invocation(time_left_ms):
            if self.pipeline.mini_batch.allow_latency:
                return self._process_folded(records)
            return self._process(records, time_left_ms)

    def _process_folded(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        """`mini_batch` without the mapping's tumbling window (Kafka, a replay): each
        partition's records folded and written at once, as bundles."""
        from tidegate.mini_batch import MiniBatch

        outcome = BatchOutcome(records=len(records))
        by_partition: dict[str, list[SourceRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        folder = MiniBatch(self)
        for _, part in sorted(by_partition.items()):
            folder.process(RecordBatch(part), None, True, outcome)
        return outcome

    def _process(
        self, records: Sequence[SourceRecord], time_left_ms: Callable[[], int] | None
    ) -> BatchOutcome:
        outcome = BatchOutcome(records=len(records))
        if not records:
            return outcome
        now, state, watermark = self.batch_start()
        outcome.watermark = watermark

        batch = self.decoder.decode_batch(batch_of(records))
        dead_records = [batch.record(i) for i, _ in batch.rejected]
        dead = [
            dead_letter(self.pipeline.name, record, rej.reason, rej.detail)
            for record, (_, rej) in zip(dead_records, batch.rejected, strict=True)
        ]
        failed = self._write_groups(self.grouped(batch), watermark, time_left_ms, outcome)
        failed_dead = self._send(self.dead_letters, dead, [i for i, _ in batch.rejected])
        outcome.dead_lettered = len(dead_records) - len(failed_dead)
        failed = sorted(failed + failed_dead)
        outcome.failed = [batch.record(i) for i in failed]
        self._advance_watermarks(batch, failed, now, state)
        return outcome

    def batch_start(self) -> tuple[int, WatermarkState, int]:
        """Processing time, the watermark items and the pipeline watermark as a batch
        begins: every record of the batch is judged against that watermark."""
        now = self.now_ms()
        spec = self.pipeline.watermark
        state = self.watermarks.read()
        watermark = state.pipeline_watermark(
            now, spec.idle_timeout, self.expected_partitions(), spec.advance_when_idle
        )
        return now, state, watermark

    def grouped(self, batch: DecodedBatch) -> list[Group]:
        """The valid records grouped by the item they update, in order of each group's first
        record."""
        groups: dict[tuple[str | None, int], list[int]] = {}
        # Grouped by (key, slot), which names the same item as (PK, SK) does: the item's key
        # strings are built once per group, not per event.
        for i, at in enumerate(zip(batch.keys, self.windows.slots(batch.times), strict=True)):
            found = groups.get(at)
            if found is None:
                groups[at] = [i]
            else:
                found.append(i)
        item_of = self.windows.item_of
        # Rejected records (key None) fell into groups of their own: left out here, not
        # tested per event.
        return [Group(*item_of(key, slot), key, indices, batch)
                for (key, slot), indices in groups.items() if key is not None]

    def _write_groups(
        self, ordered: list[Group], watermark: int, time_left_ms: Callable[[], int] | None,
        outcome: BatchOutcome,
    ) -> list[int]:
        """Write each group (in order of its first record: the batch's earliest records are
        applied first, so running out of time fails the tail, where Lambda resumes),
        `write_concurrency` at a time (the writes are independent items; each waits on a
        network round trip); count what happened in `outcome`; return the records of the
        groups that failed."""
        items = self.store.batch_get([(g.pk, g.sk) for g in ordered]) if ordered else {}
        judge, write = self.windows.judge, self.store.write_group

        def attempt(group: Group) -> Verdict | Exception | None:
            if time_left_ms is not None and time_left_ms() < _STOP_MS:
                # Out of time: report the rest as failed so Lambda checkpoints correctly
                # instead of timing out the whole batch.
                return None
            try:
                item = items.get((group.pk, group.sk))
                if not group.batch.redriven:
                    # The common case, _write_group's first round inline: every record
                    # fresh and on time, and no other writer in between.
                    verdict = judge(group, item, watermark)
                    if verdict.item is not None and not verdict.late:
                        try:
                            write(verdict.item, verdict.expected_version)
                            return verdict
                        except ConditionFailedError:
                            item = self.store.get(group.pk, group.sk)
                return self._write_group(group, item, watermark)
            except Exception as exc:  # this group's records fail; the others go on
                return exc

        failed: list[int] = []
        verdicts = each_in_flight(ordered, attempt, self.write_concurrency)
        applied = duplicates = written = late = 0
        for group, verdict in zip(ordered, verdicts, strict=True):
            if type(verdict) is Verdict:
                applied += len(verdict.applied)
                duplicates += verdict.duplicates
                written += verdict.item is not None
                late += len(verdict.late)
            else:  # no verdict: out of time, or the write raised
                failed += group.indices
        outcome.aggregated += applied
        outcome.duplicates_skipped += duplicates
        outcome.groups_written += written
        outcome.late += late
        return failed

    def _send(
        self, output: QueueOutput, messages: list[dict[str, Any]], indices: list[int]
    ) -> list[int]:
        """Send `messages` (one per record of `indices`); return the records not sent."""
        if not messages:
            return []
        try:
            return [indices[i] for i in output.send(messages)]
        except Exception:
            return list(indices)

    def _advance_watermarks(
        self, batch: DecodedBatch, failed: list[int], now: int, state: WatermarkState
    ) -> None:
        """Only a batch that completed moves its partition's watermark.

        A batch that failed part-way is retried from its lowest failure; had it raised the
        watermark, the retried records would be judged against a later watermark than the
        first time. What it did apply is kept as `pending` and joins on completion.

        Per partition: how far the batch got (`reached`, dead letters included), the highest
        event time it applied (`highest`), whether it failed (`first_failure`).
        """
        columns = batch.columns
        marks, times, keys = columns.marks, batch.times, batch.keys
        first_failure: dict[str, str] = {}
        highest: dict[str, int] = {}
        reached: dict[str, str] = {}
        one = columns.partition
        if one is not None and not failed:
            # One partition, completed (a Kinesis batch's case): two max() over columns.
            # A rejected record's time is 0, below every valid one (none is negative).
            any_valid = len(batch.rejected) < len(times)
            if any_valid and max(times) > MIN_WATERMARK:
                highest[one] = max(times)
            reached[one] = marks[-1]
            partitions = {one} if any_valid else set()
        else:
            for i in failed:
                partition = columns.partitions[i]
                mark = first_failure.get(partition)
                if mark is None or marks[i] < mark:
                    first_failure[partition] = marks[i]
            partitions = set(first_failure)
            for i, partition in enumerate(columns.partitions):
                stop = first_failure.get(partition)
                if stop is None and marks[i] > reached.get(partition, ""):
                    reached[partition] = marks[i]
                if keys[i] is None or (stop is not None and marks[i] >= stop):
                    continue
                partitions.add(partition)
                if times[i] > highest.get(partition, MIN_WATERMARK):
                    highest[partition] = times[i]
        reached = {p: m.zfill(POSITION_WIDTH) for p, m in reached.items() if m > ""}
        self._move_watermarks(highest, reached, partitions, first_failure, now, state)

    def _move_watermarks(
        self, highest: dict[str, int], reached: dict[str, str], partitions: set[str],
        first_failure: dict[str, str], now: int, state: WatermarkState,
    ) -> None:
        """`partitions`: those the batch read events of, or failed in."""
        for partition in sorted(set(reached) - partitions):
            # Dead letters only: read past, but no sign of life for the watermark.
            self.watermarks.record_position(partition, reached[partition])
        delay = self.pipeline.watermark.delay
        for partition in sorted(partitions):
            top = highest.get(partition)
            if partition in first_failure:
                if top is None:
                    self.watermarks.touch_partition(partition, now)
                else:
                    self.watermarks.hold_partition(partition, top, now)
                continue
            mark = state.partitions.get(partition)
            pending = mark.pending_ms if mark else None
            if pending is not None and (top is None or pending > top):
                top = pending
            at = reached.get(partition)
            if top is None:
                self.watermarks.touch_partition(partition, now, position=at)
            else:
                self.watermarks.advance_partition(partition, top - delay, top, now, at)

    # -- one group -----------------------------------------------------------------------
    def _write_group(self, group: Group, item: dict[str, Any] | None, watermark: int) -> Verdict:
        """Judge and write one group. Its late records go to the late queue BEFORE the write:
        the write raises the item's high-water mark past them, so a retry would skip them as
        already handled — they must be on the queue by then."""
        sent: set[int] = set()
        batch = group.batch
        for _ in range(_MAX_CONFLICT_RETRIES):
            verdict = self.windows.judge(group, item, watermark)
            if batch.redriven and verdict.item is not None:
                # Same item, same condition as the events: applied once, whatever copies.
                redrive.record_applied(verdict.item, batch, verdict.applied)
            unsent = [i for i in verdict.late if i not in sent]
            if unsent:
                self.send_late(batch, unsent, watermark)
                sent.update(unsent)
            if verdict.item is None:
                return verdict
            try:
                self.store.write_group(verdict.item, verdict.expected_version)
                return verdict
            except ConditionFailedError:
                # Someone wrote the item since we read it (the closer froze a window): re-read.
                item = self.store.get(group.pk, group.sk)
        raise TooManyConflictsError(f"item {group.pk} {group.sk}: too many write conflicts")

    def send_late(self, batch: DecodedBatch, late: list[int], watermark: int) -> None:
        messages = [
            dead_letter(
                self.pipeline.name,
                batch.record(i),
                LATE,
                f"every window of event time {batch.times[i]} was final at watermark "
                f"{watermark}",
                event_time_ms=batch.times[i],
                key=batch.keys[i],
            )
            for i in late
        ]
        if self.late_output.send(messages):
            raise OutputRefusedError("late output refused some records")

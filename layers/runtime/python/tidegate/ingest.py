"""One batch of source records -> window state, dead letters and late records.

Exactly-once effect on the aggregates, with at-least-once delivery:

* The batch is grouped by state item — (key, pane) for tumbling and sliding windows, (key)
  for sessions — and merged in memory; each group is written with one conditional put that
  also raises that item's high-water mark (`hw`) per source partition.
* A redelivered record at or below its item's mark was applied before and is skipped.
  Marks are per item, not per partition: Lambda resumes from the LOWEST reported failure
  and redelivers records that succeeded after it, and only per-item marks tell which.
* Records are judged late against the pipeline watermark as it stood when the batch began;
  the window kind decides what that means (state/panes.py, state/sessions.py). A final
  window never changes, even before the closer has published it.
* Only a completed batch raises its partition's watermark, so a retried record is judged
  against the same watermark it would have been the first time.
"""

from __future__ import annotations

from binascii import a2b_base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidegate import redrive
from tidegate.aws import retry_budget
from tidegate.dlq import QueueOutput, dead_letter
from tidegate.errors import ConditionFailedError, OutputRefusedError, TooManyConflictsError
from tidegate.gc_pause import collector_paused
from tidegate.in_flight import each_in_flight
from tidegate.rejections import FUTURE_TIMESTAMP, LATE, Rejected
from tidegate.schemas.decode import Event, JsonDecoder
from tidegate.schemas.eventtime import MAX_EVENT_TIME_MS
from tidegate.sources.kinesis import Columns, KinesisBatch
from tidegate.sources.records import SourceRecord
from tidegate.spec import Pipeline
from tidegate.state.keys import POSITION_WIDTH
from tidegate.state.panes import PaneState
from tidegate.state.protocol import Member, Verdict, WindowState
from tidegate.state.store import StateStore
from tidegate.watermark import MIN_WATERMARK, WatermarkState, WatermarkStore

_MAX_CONFLICT_RETRIES = 8
# Lambda's remaining time: below _STOP_MS no new group is started; retries of AWS calls stop
# _REPORT_MS before the end, leaving time to send dead letters and answer Lambda.
_STOP_MS = 4_000
_REPORT_MS = 2_500


@dataclass
class BatchOutcome:
    records: int = 0
    aggregated: int = 0
    late: int = 0
    dead_lettered: int = 0
    duplicates_skipped: int = 0
    groups_written: int = 0
    watermark: int = MIN_WATERMARK
    failed: list[SourceRecord] = field(default_factory=list)


@dataclass(slots=True)
class _Group:
    pk: str
    sk: str
    key: str
    members: list[Member]
    redriven: bool = False  # holds a redriven record: check the item's applied redrives


class Ingestor:
    """The ingest function's work, independent of the Lambda event shape."""

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
        self.skew = pipeline.watermark.max_future_skew
        self.write_concurrency = write_concurrency
        # Kinesis batches are taken as columns when the decoder validates to plain fields
        # and the state is panes (_ColumnBatch); sessions and other formats go record by record.
        self._columnar = getattr(decoder, "validate_fields", None) is not None and isinstance(
            windows, PaneState
        )

    # -- the batch ---------------------------------------------------------------------
    def process(
        self, records: Sequence[SourceRecord], time_left_ms: Callable[[], int] | None = None
    ) -> BatchOutcome:
        """Process one batch; with `time_left_ms` (the Lambda context's), AWS retries stop
        and the rest of the batch is reported failed before the function would time out."""
        budget_s = None if time_left_ms is None else (time_left_ms() - _REPORT_MS) / 1000
        with retry_budget(budget_s), collector_paused():
            return self._process(records, time_left_ms)

    def _process(
        self, records: Sequence[SourceRecord], time_left_ms: Callable[[], int] | None
    ) -> BatchOutcome:
        outcome = BatchOutcome(records=len(records))
        if not records:
            return outcome
        now = self.now_ms()
        spec = self.pipeline.watermark
        state = self.watermarks.read()
        watermark = state.pipeline_watermark(
            now, spec.idle_timeout, self.expected_partitions(), spec.advance_when_idle
        )
        outcome.watermark = watermark

        dead: list[dict[str, Any]] = []
        dead_records: list[SourceRecord] = []
        columnar = self._columnar and isinstance(records, KinesisBatch)
        columns = records.columns() if columnar else None  # type: ignore[attr-defined]
        batch = None
        if columns is not None:
            batch = _ColumnBatch(self, records, columns)  # type: ignore[arg-type]
            batch.group(dead, dead_records)
            failed = batch.write_all(watermark, time_left_ms, outcome)
        else:
            valid, ordered = self._grouped(records, dead, dead_records)
            failed = self._write_groups(ordered, watermark, time_left_ms, outcome)

        failed += self._send(self.dead_letters, dead, dead_records)
        failed_ids = {id(r) for r in failed}
        outcome.dead_lettered = sum(1 for r in dead_records if id(r) not in failed_ids)
        outcome.failed = failed
        if batch is not None and not failed:
            # A completed batch from one shard: _advance_watermarks' first case, from the
            # columns (its loops would build every record).
            shard = batch.columns.shard
            reached = {shard: batch.columns.marks[-1].zfill(POSITION_WIDTH)}
            highest = {shard: batch.top} if batch.valid and batch.top > MIN_WATERMARK else {}
            partitions = {shard} if batch.valid else set()
            self._move_watermarks(highest, reached, partitions, {}, now, state)
        else:
            if batch is not None:
                valid = batch.valid_members()
            self._advance_watermarks(valid, failed, now, state, records)
        return outcome

    def _grouped(
        self, records: Sequence[SourceRecord], dead: list[dict[str, Any]],
        dead_records: list[SourceRecord],
    ) -> tuple[list[Member], list[_Group]]:
        """Each record's event, grouped by the item it updates; the rest dead-lettered.
        Returns the valid members in record order, and the groups in order of their first
        record."""
        groups: dict[tuple[str, int], _Group] = {}
        valid: list[Member] = []
        redriven = False
        event_of = self._event_of
        slot = self.windows.slot
        for record in records:
            try:
                event = event_of(record)
            except Rejected as rej:
                dead.append(dead_letter(self.pipeline.name, record, rej.reason, rej.detail))
                dead_records.append(record)
                continue
            if record.redrive_id is not None:
                redriven = True
            member = (record, event)
            valid.append(member)
            # Grouped by (key, slot), which names the same item as (PK, SK) does: the item's
            # key strings are built once per group, not per event.
            at = (event.key, slot(event.time_ms))
            group = groups.get(at)
            if group is None:
                pk, sk = self.windows.locate(event.key, event.time_ms)
                group = groups[at] = _Group(pk, sk, event.key, [])
            group.members.append(member)
        if redriven:
            for group in groups.values():
                group.redriven = any(r.redrive_id is not None for r, _ in group.members)
        return valid, list(groups.values())

    def _write_groups(
        self, ordered: list[_Group], watermark: int, time_left_ms: Callable[[], int] | None,
        outcome: BatchOutcome,
    ) -> list[SourceRecord]:
        """Write each group (in order of its first record: the batch's earliest records are
        applied first, so running out of time fails the tail, where Lambda resumes); count
        what happened in `outcome`; return the records of the groups that failed."""
        items = self.store.batch_get([(g.pk, g.sk) for g in ordered]) if ordered else {}

        def write(group: _Group) -> Verdict | None:
            if time_left_ms is not None and time_left_ms() < _STOP_MS:
                # Out of time: report the rest as failed so Lambda checkpoints correctly
                # instead of timing out the whole batch.
                return None
            return self._write_group(group, items.get((group.pk, group.sk)), watermark)

        failed: list[SourceRecord] = []
        for group, verdict in self._each_group(ordered, write):
            if isinstance(verdict, Verdict):
                self._count(verdict, outcome)
            else:  # no verdict: out of time, or the write raised
                failed += [r for r, _ in group.members]
        return failed

    @staticmethod
    def _count(verdict: Verdict, outcome: BatchOutcome) -> None:
        outcome.aggregated += len(verdict.applied)
        outcome.duplicates_skipped += verdict.duplicates
        outcome.groups_written += verdict.item is not None
        outcome.late += len(verdict.late)

    def _each_group(
        self, ordered: list[_Group], write: Callable[[_Group], Verdict | None]
    ) -> list[tuple[_Group, Verdict | Exception | None]]:
        """Each group's write: one after another, or `write_concurrency` at a time (the
        writes are independent items; each waits on a network round trip)."""
        def attempt(group: _Group) -> Verdict | Exception | None:
            try:
                return write(group)
            except Exception as exc:  # this group's records fail; the others go on
                return exc

        verdicts = each_in_flight(ordered, attempt, self.write_concurrency)
        return list(zip(ordered, verdicts, strict=True))

    def _event_of(self, record: SourceRecord) -> Event:
        """The record's event, or Rejected saying why it has none (for its dead letter)."""
        try:
            # _decode's common case (no headers) without its call.
            if record.headers is None:
                event = self.decoder.decode_b64(record.data_b64)
            else:
                event = self._decode(record)
        except Rejected:
            # A redriven record's envelope fails every decoder: looking for it only here
            # costs the records without one nothing.
            if not redrive.unwrap(record):
                raise
            event = self._decode(record)
        if self.skew is not None and event.time_ms > record.arrival_ms + self.skew:
            raise Rejected(
                FUTURE_TIMESTAMP,
                f"{self.pipeline.event_time}: event time {event.time_ms} is "
                f"{event.time_ms - record.arrival_ms} ms after arrival "
                f"(max_future_skew {self.skew} ms)",
            )
        return event

    def _decode(self, record: SourceRecord) -> Event:
        if record.headers is None:
            return self.decoder.decode_b64(record.data_b64)
        return self.decoder.decode_headed(record.data_b64, record.headers)

    def _send(
        self, output: QueueOutput, messages: list[dict[str, Any]], records: list[SourceRecord]
    ) -> list[SourceRecord]:
        if not messages:
            return []
        try:
            return [records[i] for i in output.send(messages)]
        except Exception:
            return list(records)

    def _advance_watermarks(
        self,
        valid: list[tuple[SourceRecord, Event]],
        failed: list[SourceRecord],
        now: int,
        state: WatermarkState,
        records: Sequence[SourceRecord],
    ) -> None:
        """Only a batch that completed moves its partition's watermark.

        A batch that failed part-way is retried from its lowest failure; had it raised the
        watermark, the retried records would be judged against a later watermark than the
        first time. What it did apply is kept as `pending` and joins on completion.
        """
        first_failure: dict[str, str] = {}
        for record in failed:
            mark = first_failure.get(record.partition)
            if mark is None or record.mark < mark:
                first_failure[record.partition] = record.mark
        highest: dict[str, int] = {}
        # How far the batch got per partition, dead-lettered records included.
        reached: dict[str, str] = {}
        read_from = {r.partition for r in records}
        if len(read_from) == 1 and not first_failure:
            # A Kinesis batch's case (one shard, completed): the loops below reduce to two
            # max() over the batch.
            (partition,) = read_from
            if valid:
                top = max(event.time_ms for _, event in valid)
                if top > MIN_WATERMARK:
                    highest[partition] = top
            mark = max(r.mark for r in records)
            if mark > "":
                reached[partition] = mark
            partitions = {partition} if valid else set()
        else:
            for record, event in valid:
                stop = first_failure.get(record.partition)
                if stop is not None and record.mark >= stop:
                    continue
                if event.time_ms > highest.get(record.partition, MIN_WATERMARK):
                    highest[record.partition] = event.time_ms
            for record in records:
                if record.partition not in first_failure and record.mark > reached.get(
                    record.partition, ""
                ):
                    reached[record.partition] = record.mark
            partitions = {r.partition for r, _ in valid} | set(first_failure)
        self._move_watermarks(highest, reached, partitions, first_failure, now, state)

    def _move_watermarks(
        self, highest: dict[str, int], reached: dict[str, str], partitions: set[str],
        first_failure: dict[str, str], now: int, state: WatermarkState,
    ) -> None:
        """Per partition: how far the batch got (`reached`), the highest event time it applied
        (`highest`), whether it failed (`first_failure`); `partitions`: those it read events
        of, or failed in."""
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
    def _write_group(
        self, group: _Group, item: dict[str, Any] | None, watermark: int
    ) -> Verdict:
        """Judge and write one group. Its late records go to the late queue BEFORE the write:
        the write raises the item's high-water mark past them, so a retry would skip them as
        already handled — they must be on the queue by then."""
        sent: set[int] = set()
        for _ in range(_MAX_CONFLICT_RETRIES):
            members, redriven_before = group.members, 0
            if group.redriven:
                members, redriven_before = redrive.skip_applied(members, item)
            verdict = self.windows.judge(group.key, group.sk, members, item, watermark)
            verdict.duplicates += redriven_before
            if group.redriven and verdict.item is not None:
                # Same item, same condition as the events: applied once, whatever copies.
                redrive.record_applied(verdict.item, verdict.applied)
            unsent = [m for m in verdict.late if id(m[0]) not in sent]
            if unsent:
                self._send_late(unsent, watermark)
                sent.update(id(r) for r, _ in unsent)
            if verdict.item is None:
                return verdict
            try:
                self.store.write_group(verdict.item, verdict.expected_version)
                return verdict
            except ConditionFailedError:
                # Someone wrote the item since we read it (the closer froze a window): re-read.
                item = self.store.get(group.pk, group.sk)
        raise TooManyConflictsError(f"item {group.pk} {group.sk}: too many write conflicts")

    def _send_late(self, late: list[Member], watermark: int) -> None:
        messages = [
            dead_letter(
                self.pipeline.name,
                record,
                LATE,
                f"every window of event time {event.time_ms} was final at watermark {watermark}",
                event_time_ms=event.time_ms,
                key=event.key,
            )
            for record, event in late
        ]
        if self.late_output.send(messages):
            raise OutputRefusedError("late output refused some records")


class _ColumnBatch:
    """A Kinesis batch taken as columns (README "Performance"). Each record's data is validated
    straight into a dict of its fields and grouped by (key, pane) with no SourceRecord or
    Event built, and each group is merged into its pane item whole. A record off this common
    path (any rejection, a redriven record, an unusual time or key) takes
    `Ingestor._event_of`, and a group off it (duplicates, late events, a write conflict)
    `Ingestor._write_group`: the general path, so outcomes and rejections are the same."""

    def __init__(self, ingest: Ingestor, batch: KinesisBatch, columns: Columns) -> None:
        self.ingest = ingest
        self.batch = batch
        self.columns = columns
        size = len(columns.data)
        self.times: list[int] = [0] * size
        self.values: list[dict[str, Any] | None] = [None] * size  # None: dead-lettered
        self.top = MIN_WATERMARK  # the highest valid event time
        self.valid = 0
        self.entries: list[tuple[tuple[str, int], list[int]]] = []  # ((key, pane), records)
        self.redriven: set[int] = set()
        windows = ingest.windows
        assert isinstance(windows, PaneState)
        self.windows = windows

    def group(self, dead: list[dict[str, Any]], dead_records: list[SourceRecord]) -> None:
        """Ingestor._grouped: each record's fields, grouped by (key, pane) in the same order
        with the same records in each; the rest dead-lettered."""
        ingest = self.ingest
        decoder = ingest.decoder
        validate = decoder.validate_fields
        assert validate is not None
        time_field = decoder.time_field
        key_fields = decoder.key_fields
        key_field = key_fields[0] if len(key_fields) == 1 else None
        memo = decoder.key_memo
        key_of = decoder.key_of
        pane_ms = self.windows.assigner.pane_ms
        # Below the least arrival plus the skew, no record's event time is too far ahead.
        limit = MAX_EVENT_TIME_MS
        if ingest.skew is not None:
            limit = min(limit, self.columns.first_arrival_ms + ingest.skew)
        times, values = self.times, self.values
        groups: dict[tuple[str, int], list[int]] = {}
        redriven: set[int] = set()
        rejected = 0
        for i, data in enumerate(self.columns.data):
            # The decoder's steps (JsonDecoder.decode_b64 then to_event) for the common case.
            key = None
            try:
                fields = validate(a2b_base64(data, strict_mode=True))
                t = fields[time_field]
                if type(t) is int and 0 <= t <= limit:
                    if key_field is not None:
                        value = fields[key_field]
                        if type(value) is str:
                            key = memo.get(value)
                    if key is None:
                        key = key_of([fields[f] for f in key_fields])
            except Exception:  # off the common path: the record's own path says how
                key = None
            if key is None:
                record = self.batch.record(i)
                try:
                    event = ingest._event_of(record)
                except Rejected as rej:
                    dead.append(dead_letter(ingest.pipeline.name, record, rej.reason, rej.detail))
                    dead_records.append(record)
                    rejected += 1
                    continue
                if record.redrive_id is not None:
                    redriven.add(i)
                t, key, fields = event.time_ms, event.key, event.values
            times[i] = t
            values[i] = fields
            at = (key, t - t % pane_ms)  # PaneState.slot
            found = groups.get(at)
            if found is None:
                groups[at] = [i]
            else:
                found.append(i)
        self.valid = len(times) - rejected
        # A dead-lettered record's time stays 0, below every valid one (none is negative).
        self.top = max(times) if self.valid else MIN_WATERMARK

        self.entries = list(groups.items())
        self.redriven = redriven

    def _redriven(self, indices: list[int]) -> bool:
        return bool(self.redriven) and not self.redriven.isdisjoint(indices)

    def members(self, indices: list[int], key: str) -> list[Member]:
        record, times, values = self.batch.record, self.times, self.values
        return [(record(i), Event(times[i], key, values[i])) for i in indices]  # type: ignore[arg-type]

    def valid_members(self) -> list[Member]:
        """Every valid record with its event, in batch order (as Ingestor._grouped's)."""
        found: dict[int, Member] = {}
        for (key, _), indices in self.entries:
            found.update(zip(indices, self.members(indices, key), strict=True))
        return [found[i] for i in sorted(found)]

    def write_all(
        self, watermark: int, time_left_ms: Callable[[], int] | None, outcome: BatchOutcome
    ) -> list[SourceRecord]:
        """Ingestor._write_groups for the columns, `write_concurrency` at a time: for a
        group whose records are all fresh and on time and whose write applies, no _Group
        and no call but the merge and the put (_write_entry); the rest take the general
        path. Returns the records of the groups that failed."""
        ingest = self.ingest
        item_of = self.windows.item_of
        located = [(item_of(key, pane), key, indices) for (key, pane), indices in self.entries]
        items = ingest.store.batch_get([at for at, _, _ in located]) if located else {}
        write = self._write_entry
        redriven = self.redriven

        def attempt(
            entry: tuple[tuple[str, str], str, list[int]],
        ) -> Verdict | int | Exception | None:
            at, key, indices = entry
            try:
                if time_left_ms is not None and time_left_ms() < _STOP_MS:
                    return None  # out of time: failed, as in Ingestor._write_groups
                if redriven and self._redriven(indices):
                    group = _Group(at[0], at[1], key, self.members(indices, key), True)
                    return ingest._write_group(group, items.get(at), watermark)
                return write(at, key, indices, items.get(at), watermark)
            except Exception as exc:  # this group's records fail; the others go on
                return exc

        failed: list[SourceRecord] = []
        applied = written = 0
        verdicts = each_in_flight(located, attempt, ingest.write_concurrency)
        for (_, _, indices), verdict in zip(located, verdicts, strict=True):
            if type(verdict) is int:  # written whole: all its records applied
                applied += verdict
                written += 1
            elif isinstance(verdict, Verdict):
                ingest._count(verdict, outcome)
            else:
                failed += [self.batch.record(i) for i in indices]
        outcome.aggregated += applied
        outcome.groups_written += written
        return failed

    def _general(
        self, at: tuple[str, str], key: str, indices: list[int], item: dict[str, Any] | None,
        watermark: int,
    ) -> Verdict:
        """Duplicates or late events: the group as Ingestor._write_group judges it."""
        group = _Group(at[0], at[1], key, self.members(indices, key))
        return self.ingest._write_group(group, item, watermark)

    def _write_entry(
        self, at: tuple[str, str], key: str, indices: list[int], item: dict[str, Any] | None,
        watermark: int,
    ) -> Verdict | int:
        """Ingestor._write_group for a column group: the records applied (all of them), or
        the general path's Verdict when the group holds duplicates or late events, or its
        write meets another."""
        marks, shard = self.columns.marks, self.columns.shard
        times, values = self.times, self.values
        if len(indices) == 1:
            (first,) = indices
            group_times, group_values = [times[first]], [values[first]]
        else:
            group_times = [times[i] for i in indices]
            group_values = [values[i] for i in indices]
        if item:
            # split_duplicates: a record at or below the item's mark for its shard was
            # applied before. Marks ascend: the group's first is its lowest, its last its
            # highest.
            seen: dict[str, str] = item.get("hw", {})
            if marks[indices[0]].zfill(POSITION_WIDTH) <= seen.get(shard, ""):
                return self._general(at, key, indices, item, watermark)
            raised = dict(seen)
            expected: int | None = int(item["ver"])
        else:
            raised, expected = {}, None  # a new item: every record fresh
        new = self.windows.merged(key, at[1], group_times, group_values,  # type: ignore[arg-type]
                                  item, watermark)
        if new is None:  # late: judged and sent to the late output by the general path
            return self._general(at, key, indices, item, watermark)
        raised[shard] = marks[indices[-1]].zfill(POSITION_WIDTH)
        new["hw"] = raised
        try:
            self.ingest.store.write_group(new, expected)
            return len(indices)
        except ConditionFailedError:
            # Someone wrote the item since we read it (the closer froze a window): re-read it.
            fresh = self.ingest.store.get(*at)
        return self._general(at, key, indices, fresh, watermark)

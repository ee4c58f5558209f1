"""One batch of source records -> pane state, dead letters and late records.

Exactly-once effect on the aggregates, with at-least-once delivery:

* The batch is grouped by (key, pane) and merged in memory; each group is written with one
  conditional put that also raises that item's high-water mark (`hw`) per source partition.
* A redelivered record at or below its item's mark was applied before and is skipped.
  Marks are per item, not per partition: Lambda resumes from the LOWEST reported failure
  and redelivers records that succeeded after it, and only per-item marks tell which.
* Records are judged late against the pipeline watermark as it stood when the batch began.
  A pane whose window was final but not yet closed gets that window's snapshot frozen from
  its state before this batch, so a final window never changes.
* The partition watermark is raised only by records before the first failure, so a retried
  record is judged against the same watermark it would have been the first time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidegate.aggregates.builtin import AccumulatorSet
from tidegate.dlq import QueueOutput, dead_letter
from tidegate.rejections import FUTURE_TIMESTAMP, LATE, Rejected
from tidegate.schemas.decode import Event, JsonDecoder
from tidegate.sources.records import SourceRecord
from tidegate.spec import Pipeline
from tidegate.state import keys
from tidegate.state.dynamodb import DynamoStore
from tidegate.watermark import MIN_WATERMARK, WatermarkStore
from tidegate.windows.base import PaneAssigner, ceil_to

_MAX_CONFLICT_RETRIES = 8


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


@dataclass
class _Group:
    pk: str
    sk: str
    pane_ms: int
    key: str
    members: list[tuple[SourceRecord, Event]] = field(default_factory=list)

    @property
    def first_mark(self) -> str:
        return min(r.mark for r, _ in self.members)


@dataclass
class _Verdict:
    item: dict[str, Any] | None  # the item to write, None when nothing to write
    expected_version: int | None
    applied: list[SourceRecord]
    late: list[tuple[SourceRecord, Event]]
    duplicates: int


class Ingestor:
    """The ingest function's work, independent of the Lambda event shape."""

    def __init__(
        self,
        pipeline: Pipeline,
        decoder: JsonDecoder,
        assigner: PaneAssigner,
        accumulators: AccumulatorSet,
        store: DynamoStore,
        watermarks: WatermarkStore,
        dead_letters: QueueOutput,
        late_output: QueueOutput,
        expected_partitions: Callable[[], list[str]],
        now_ms: Callable[[], int],
    ) -> None:
        self.pipeline = pipeline
        self.decoder = decoder
        self.assigner = assigner
        self.acc = accumulators
        self.store = store
        self.watermarks = watermarks
        self.dead_letters = dead_letters
        self.late_output = late_output
        self.expected_partitions = expected_partitions
        self.now_ms = now_ms
        self.lateness = pipeline.allowed_lateness
        self.skew = pipeline.watermark.max_future_skew

    # -- the batch ---------------------------------------------------------------------
    def process(
        self, records: list[SourceRecord], time_left_ms: Callable[[], int] | None = None
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
        groups: dict[tuple[str, int], _Group] = {}
        valid: list[tuple[SourceRecord, Event]] = []
        for record in records:
            try:
                event = self.decoder.decode_b64(record.data_b64)
                if self.skew is not None and event.time_ms > record.arrival_ms + self.skew:
                    raise Rejected(
                        FUTURE_TIMESTAMP,
                        f"{self.pipeline.event_time}: event time {event.time_ms} is "
                        f"{event.time_ms - record.arrival_ms} ms after arrival "
                        f"(max_future_skew {self.skew} ms)",
                    )
            except Rejected as rej:
                dead.append(dead_letter(self.pipeline.name, record, rej.reason, rej.detail))
                dead_records.append(record)
                continue
            valid.append((record, event))
            pane = self.assigner.pane_of(event.time_ms)
            group = groups.get((event.key, pane))
            if group is None:
                pk = keys.key_pk(self.pipeline.name, self.pipeline.state_version, event.key)
                group = _Group(pk, keys.pane_sk(pane), pane, event.key)
                groups[(event.key, pane)] = group
            group.members.append((record, event))

        failed: list[SourceRecord] = []
        late: list[tuple[SourceRecord, Event]] = []
        ordered = sorted(groups.values(), key=lambda g: g.first_mark)
        items = self.store.batch_get([(g.pk, g.sk) for g in ordered]) if ordered else {}
        for index, group in enumerate(ordered):
            if time_left_ms is not None and time_left_ms() < 2_000:
                # Out of time: report the rest as failed so Lambda checkpoints correctly
                # instead of timing out the whole batch.
                for rest in ordered[index:]:
                    failed += [r for r, _ in rest.members]
                break
            try:
                verdict = self._write_group(group, items.get((group.pk, group.sk)), watermark)
            except Exception:
                failed += [r for r, _ in group.members]
                continue
            outcome.aggregated += len(verdict.applied)
            outcome.duplicates_skipped += verdict.duplicates
            outcome.groups_written += verdict.item is not None
            late += verdict.late

        late_messages = [
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
        failed += self._send(self.late_output, late_messages, [r for r, _ in late])
        failed += self._send(self.dead_letters, dead, dead_records)
        failed_ids = {id(r) for r in failed}
        outcome.late = sum(1 for r, _ in late if id(r) not in failed_ids)
        outcome.dead_lettered = sum(1 for r in dead_records if id(r) not in failed_ids)
        outcome.failed = failed
        self._advance_watermarks(valid, failed, now)
        return outcome

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
        self, valid: list[tuple[SourceRecord, Event]], failed: list[SourceRecord], now: int
    ) -> None:
        first_failure: dict[str, str] = {}
        for record in failed:
            mark = first_failure.get(record.partition)
            if mark is None or record.mark < mark:
                first_failure[record.partition] = record.mark
        highest: dict[str, int] = {}
        seen: set[str] = set()
        for record, event in valid:
            seen.add(record.partition)
            stop = first_failure.get(record.partition)
            if stop is not None and record.mark >= stop:
                continue
            if event.time_ms > highest.get(record.partition, MIN_WATERMARK):
                highest[record.partition] = event.time_ms
        delay = self.pipeline.watermark.delay
        for partition, max_event in highest.items():
            self.watermarks.advance_partition(partition, max_event - delay, max_event, now)
        for partition in seen - highest.keys():
            self.watermarks.touch_partition(partition, now)

    # -- one group -----------------------------------------------------------------------
    def _write_group(
        self, group: _Group, item: dict[str, Any] | None, watermark: int
    ) -> _Verdict:
        for _ in range(_MAX_CONFLICT_RETRIES):
            verdict = self._judge(group, item, watermark)
            if verdict.item is None:
                return verdict
            if self.store.put_versioned(verdict.item, verdict.expected_version):
                return verdict
            # Someone wrote the pane since we read it (the closer froze a window): re-read.
            item = self.store.get(group.pk, group.sk)
        raise RuntimeError(f"pane {group.pk} {group.sk}: too many write conflicts")

    def _judge(self, group: _Group, item: dict[str, Any] | None, watermark: int) -> _Verdict:
        marks: dict[str, str] = dict(item.get("hw", {})) if item else {}
        fresh: list[tuple[SourceRecord, Event]] = []
        duplicates = 0
        for record, event in group.members:
            if record.mark <= marks.get(record.partition, ""):
                duplicates += 1
            else:
                fresh.append((record, event))
        expected = int(item["ver"]) if item else None
        if not fresh:
            return _Verdict(None, expected, [], [], duplicates)

        a = self.assigner
        pane = group.pane_ms
        last_ws = a.last_window_of_pane(pane)
        # Windows starting after this are not final at `watermark` (close = end + lateness).
        first_unfinal = max(
            a.first_window_of_pane(pane),
            ceil_to(watermark - a.size_ms - self.lateness + 1, a.slide_ms),
        )
        if item is None:
            floor_ws = first_unfinal
        else:
            floor_ws = max(int(item["first_ws"]), int(item["next_ws"]))
        open_ws = max(floor_ws, first_unfinal)
        while item is not None and open_ws <= last_ws and keys.snapshot_attrs(open_ws)[0] in item:
            open_ws += a.slide_ms  # frozen by the closer: final already
        if open_ws > last_ws:
            return _Verdict(None, expected, [], fresh, duplicates)

        batch_acc = self.acc.create()
        tmin, tmax = fresh[0][1].time_ms, fresh[0][1].time_ms
        for record, event in fresh:
            self.acc.add_event(batch_acc, event.values)
            tmin, tmax = min(tmin, event.time_ms), max(tmax, event.time_ms)
            if record.mark > marks.get(record.partition, ""):
                marks[record.partition] = record.mark

        if item is None:
            new = {
                "PK": group.pk,
                "SK": group.sk,
                "acc": batch_acc,
                "n": len(fresh),
                "ver": 1,
                "first_ws": open_ws,
                "next_ws": open_ws,
                "tmin": tmin,
                "tmax": tmax,
                "open_pk": keys.open_index_pk(
                    self.pipeline.name,
                    self.pipeline.state_version,
                    group.key,
                    self.pipeline.index_shards,
                ),
                "open_sk": open_ws + a.size_ms + self.lateness,
            }
        else:
            new = dict(item)
            # Final but not yet closed windows keep the pane as it was before this batch.
            for ws in range(floor_ws, open_ws, a.slide_ms):
                acc_attr, n_attr = keys.snapshot_attrs(ws)
                if acc_attr not in new:
                    new[acc_attr] = item["acc"]
                    new[n_attr] = item["n"]
            new["acc"] = self.acc.merge(item["acc"], batch_acc)
            new["n"] = int(item["n"]) + len(fresh)
            new["ver"] = int(item["ver"]) + 1
            new["tmin"] = min(int(item.get("tmin", tmin)), tmin)
            new["tmax"] = max(int(item.get("tmax", tmax)), tmax)
        new["hw"] = marks
        return _Verdict(new, expected, [r for r, _ in fresh], [], duplicates)

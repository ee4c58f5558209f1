"""The ingest's fast steps change nothing: a Kinesis batch read as columns straight from the
event, validated in the decoder's tight loop, with a group's duplicates found from its
first and last marks, has exactly the effect of the same records taken one by one through
the decoder's per-record path and the general duplicate check: the same items written, the
same dead letters with the same reasons, the same late records, watermark moves and
failures, whatever the batch holds, for pane and session windows alike."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import asdict, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import BASE_MS, SHARD0, kinesis_event, pipeline_spec, seq
from tidegate import redrive, sources
from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.aggregates.registry import build_aggregates
from tidegate.ingest import BatchOutcome, Ingestor
from tidegate.schemas.decode import JsonDecoder
from tidegate.schemas.event_model import compile_schema
from tidegate.sources.kinesis import KinesisBatch
from tidegate.sources.records import Columns, RecordBatch
from tidegate.spec import Pipeline, parse_pipeline
from tidegate.state.memory import MemoryStore
from tidegate.watermark import MIN_WATERMARK, WatermarkStore
from tidegate.windows import window_kind

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/tg-events"
ARRIVAL_S = (BASE_MS + 60_000) / 1000


def _pipeline(window: dict[str, Any]) -> Pipeline:
    return parse_pipeline(pipeline_spec(
        schema={"name": "Reading", "fields": {
            "user": "string", "ts": "timestamp", "v": "number", "qty": "integer?",
        }},
        window=window,
        watermark={"delay": "2s", "idle_timeout": "1m", "max_future_skew": "30s"},
        aggregates={"n": {"op": "count"}, "total": {"op": "sum", "field": "v"},
                    "hi": {"op": "max", "field": "v"}, "lo": {"op": "min", "field": "qty"},
                    "mean": {"op": "avg", "field": "v"}},
    ))


PIPELINES = [_pipeline({"type": "tumbling", "size": "10s"}),
             _pipeline({"type": "sliding", "size": "30s", "slide": "10s"}),
             _pipeline({"type": "session", "gap": "5s"})]


class OneByOne(RecordBatch):
    """Records as a plain list gives them, with no partition declared for the whole batch:
    the ingest's general steps."""

    def columns(self) -> Columns:
        return replace(super().columns(), partition=None)


class RacingStore(MemoryStore):
    """The in-memory store, logging the ingest's reads and writes; the first write of a
    key's existing item in `conflicts` meets another writer's (as if the closer had written
    the item in between: its version moves on)."""

    def __init__(self, conflicts: set[str]) -> None:
        super().__init__()
        self.conflicts = set(conflicts)
        self.log: list[str] = []

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        self.log.append(f"get {pk} {sk}")
        return super().get(pk, sk)

    def write_group(self, item: dict[str, Any], expected_version: int | None) -> None:
        self.log.append(f"put {(item['PK'], item['SK'])} {expected_version}")
        current = super().get(item["PK"], item["SK"])
        if current is not None and item["PK"] in self.conflicts:
            self.conflicts.discard(item["PK"])
            super().write_group({**current, "ver": current["ver"] + 1}, int(current["ver"]))
        super().write_group(item, expected_version)


class Queue:
    def __init__(self, refuse: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refuse = refuse

    def send(self, messages: list[dict[str, Any]]) -> list[int]:
        if self.refuse:
            return list(range(len(messages)))
        self.messages += messages
        return []


class Run:
    def __init__(self, pipeline: Pipeline, floor: int, conflicts: set[str],
                 refuse_dead: bool, concurrency: int = 1) -> None:
        self.store = RacingStore(conflicts)
        self.watermarks = WatermarkStore(self.store, pipeline.name, pipeline.state_version)
        if floor > MIN_WATERMARK:
            self.watermarks.advance_pipeline(floor)
        self.dead = Queue(refuse_dead)
        self.late = Queue()
        windows = window_kind(pipeline).state(AccumulatorSet(build_aggregates(pipeline)))
        self.decoder = JsonDecoder(pipeline, compile_schema(pipeline))
        self.ingestor = Ingestor(
            pipeline=pipeline,
            decoder=self.decoder,
            windows=windows,
            store=self.store,
            watermarks=self.watermarks,
            dead_letters=self.dead,  # type: ignore[arg-type]
            late_output=self.late,  # type: ignore[arg-type]
            expected_partitions=list,
            now_ms=lambda: BASE_MS + 60_000,
            write_concurrency=concurrency,
        )
        self.concurrency = concurrency

    def process(self, event: dict[str, Any], columns: bool, stop_after: int | None) -> Any:
        records = sources.records_of(copy.deepcopy(event))
        if columns:
            assert records.columns().partition == SHARD0  # read straight from the event
            assert self.decoder.validate_fields is not None  # in the tight loop
        else:
            records = OneByOne(list(records))  # type: ignore[assignment]
            self.decoder.validate_fields = None  # each record through event_of
        calls = [0]

        def time_left() -> int:
            calls[0] += 1
            return 60_000 if stop_after is None or calls[0] <= stop_after else 1_000

        outcome = self.ingestor.process(records, time_left if stop_after is not None else None)
        plain = _plain(outcome)
        if self.concurrency > 1:
            plain["failed"] = sorted(plain["failed"])
        return plain

    def state(self) -> Any:
        logs: list[Any] = [self.store.log, self.dead.messages, self.late.messages]
        if self.concurrency > 1:  # groups written side by side: in no set order
            logs = [sorted(map(repr, log)) for log in logs]
        return (repr(sorted(self.store.items.items())), *logs)


def _plain(outcome: BatchOutcome) -> dict[str, Any]:
    plain = asdict(outcome)
    plain["failed"] = [(r.partition, r.position, r.data_b64) for r in outcome.failed]
    return plain


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# Mostly valid events of a few keys, so items are updated, redelivered and contended.
_users = st.sampled_from(["a", "a", "b", "c", "zoë", "x" * 2_000])
_times = st.integers(0, 9).flatmap(lambda kind: (
    st.integers(min_value=BASE_MS + 95_000, max_value=BASE_MS + 200_000) if kind == 0  # ahead
    else st.sampled_from(["2023-11-14T22:13:25+00:00", "2023-11-14T22:13:21.5Z", -1, 1.5])
    if kind == 1
    else st.integers(min_value=BASE_MS - 40_000, max_value=BASE_MS + 60_000)
))
_values = st.one_of(st.integers(min_value=-5, max_value=10**20), st.floats(-1e6, 1e6),
                    st.sampled_from([0.1, 2.5, True, "7", None]))


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {"user": draw(_users), "ts": draw(_times), "v": draw(_values)}
    if draw(st.booleans()):
        event["qty"] = draw(st.one_of(st.none(), st.integers(-3, 3), st.just(2**64)))
    if draw(st.integers(0, 19)) == 0:
        del event[draw(st.sampled_from(["user", "ts", "v"]))]
    return event


_junk = st.sampled_from([
    "not base64!", "QUJD=", _b64(b"\xff\xfe\x00"), _b64(b"{"), _b64(b"[1, 2]"), _b64(b"null"),
    _b64(b'{"user": 5, "ts": 1700000001000, "v": 1}'), _b64(b"  "), "",
])


@st.composite
def _data(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 14))
    if kind == 0:
        return draw(_junk)
    payload = json.dumps(draw(_events())).encode("utf-8")
    if kind == 1:  # a redriven dead letter, its id repeated across records
        rid = draw(st.sampled_from(["r1", "r2"]))
        return _b64(redrive.wrap(payload, rid, {"partition": SHARD0, "position": "1"}))
    return _b64(payload)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pipeline=st.sampled_from(PIPELINES),
    first=st.lists(_data(), min_size=1, max_size=25),
    second=st.lists(_data(), max_size=10),
    redeliver_from=st.integers(0, 25),
    floor=st.sampled_from([MIN_WATERMARK, BASE_MS - 15_000, BASE_MS + 5_000]),
    conflict=st.sampled_from([set(), {'A#tg-test#v1#["a"]'}, {'A#tg-test#v1#["b"]'}]),
    stop_after=st.one_of(st.none(), st.integers(1, 6)),
    refuse_dead=st.booleans(),
    kinesis_positions=st.booleans(),
    concurrency=st.sampled_from([1, 1, 3]),
)
def test_a_batch_as_columns_has_the_effect_of_its_records_one_by_one(
    pipeline: Pipeline, first: list[str], second: list[str], redeliver_from: int, floor: int,
    conflict: set[str], stop_after: int | None, refuse_dead: bool, kinesis_positions: bool,
    concurrency: int,
) -> None:
    # GIVEN a batch, then a redelivery of part of it with new records after (duplicates);
    # positions as Kinesis numbers them, or of growing widths (offsets from 8: 9, 10 ...)
    position = seq if kinesis_positions else lambda i: str(8 + i)
    numbered = [(position(i), data) for i, data in enumerate(first + second)]
    batches = [numbered[: len(first)], numbered[min(redeliver_from, len(first)):]]
    events = [kinesis_event(b, ARN, arrival_s=ARRIVAL_S) for b in batches if b]
    by_columns = Run(pipeline, floor, conflict, refuse_dead, concurrency)
    one_by_one = Run(pipeline, floor, conflict, refuse_dead, concurrency)

    if concurrency > 1:
        stop_after = None  # which groups run out of time would depend on thread timing
    # WHEN each takes the batches, as columns and record by record
    for event in events:
        expected = one_by_one.process(event, columns=False, stop_after=stop_after)
        assert by_columns.process(event, columns=True, stop_after=stop_after) == expected

    # THEN every effect is the same
    assert by_columns.state() == one_by_one.state()


def _event(records: list[tuple[str, str]], shard: str = SHARD0) -> dict[str, Any]:
    return kinesis_event([(s, d) for s, d in records], ARN, shard=shard, arrival_s=ARRIVAL_S)


@pytest.mark.parametrize("records, shards", [
    ([(seq(2), "e30="), (seq(1), "e30=")], None),  # positions out of order
    ([(seq(1), "e30="), (seq(1), "e30=")], None),  # a position twice
    ([("7", "e30="), ("007", "e30=")], None),  # one position twice, written two ways
    ([("", "e30=")], None),  # no position
    ([("-1", "e30=")], None),  # not digits
    ([(seq(1), "e30="), (seq(2), "e30=")], [SHARD0, "shardId-000000000001"]),
    ([(seq(1), "e30="), (seq(2), "e30=")], [SHARD0, f"{SHARD0}:x"]),  # x:seq after the shard
    ([(seq(1), "e30="), (seq(2), "e30=")], [SHARD0, f"x{SHARD0}"]),  # the shard inside an id
    ([(seq(1), "e30="), (seq(2), "e30=")], [SHARD0, f"\0{SHARD0}"]),  # a NUL in an id
])
def test_a_batch_unlike_kinesis_is_read_from_its_records(
    records: list[tuple[str, str]], shards: list[str] | None
) -> None:
    event = _event(records)
    for rec, shard in zip(event["Records"], shards or [], strict=False):
        rec["eventID"] = f"{shard}:{rec['kinesis']['sequenceNumber']}"

    batch = sources.records_of(event)

    assert isinstance(batch, KinesisBatch)
    try:
        records = list(batch)
    except ValueError:  # no position at all: no record, whichever way it is read
        with pytest.raises(ValueError):
            batch.columns()
        return
    assert batch.columns() == Columns.of(records)
    # Duplicates are checked record by record (a lone record is trivially in order).
    assert batch.columns().partition is None or len(records) == 1


def test_a_kinesis_batch_reads_as_the_list_of_its_records() -> None:
    event = _event([(seq(1), "e30="), (seq(2), "eyJhIjoxfQ==")])
    batch = sources.records_of(event)

    assert len(batch) == 2
    assert batch[-1] is batch[1] is list(batch)[1]  # one object per record
    assert batch[0].position == seq(1) and batch[1].data_b64 == "eyJhIjoxfQ=="
    assert batch[0].arrival_ms == int(ARRIVAL_S * 1000)
    assert batch[0].partition == SHARD0 and batch[0].partition_key == "pk"
    assert batch[:1] == [batch[0]]
    assert batch == list(batch)
    columns = batch.columns()
    assert (columns.partition, columns.marks, columns.data) == (
        SHARD0, [seq(1), seq(2)], ["e30=", "eyJhIjoxfQ=="])
    assert columns.partitions == [SHARD0, SHARD0]
    with pytest.raises(IndexError):
        batch[2]


def test_positions_of_different_widths_are_marked_to_compare_as_numbers() -> None:
    columns = sources.records_of(_event([("9", "e30="), ("10", "e30=")])).columns()

    assert columns.marks == ["9".zfill(64), "10".zfill(64)]

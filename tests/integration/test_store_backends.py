"""The in-memory store keeps DynamoDB's contract: the same operations on `MemoryStore` and
on `DynamoStore` (moto) give the same answers, raise the same domain errors carrying the same
items, and leave the same items behind.

Each script drives one part of the protocol through its winning and losing races; what it
records is compared between the backends, and a few facts are also asserted by hand so the
scripts cannot pass by doing nothing on both.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from tidegate.errors import ConditionFailedError, TidegateError, TransactionConflictError
from tidegate.state import keys
from tidegate.state.dynamodb import DynamoStore
from tidegate.state.memory import MemoryStore
from tidegate.state.store import CLOSING, PENDING, StateStore

PK_A = "A#p#v1#a"
PK_B = "A#p#v1#b"
META = "M#p#v1"
INDEX = "open#p#v1#0"
WM0 = keys.watermark_sk("shard-0")


@pytest.fixture
def dynamo(moto_url: str) -> Iterator[DynamoStore]:
    from tidegate import topology
    from tidegate.aws import client
    from tidegate_dev.local.server import endpoint

    with endpoint(moto_url):
        name = f"tg-store-{uuid.uuid4().hex[:8]}"
        client("dynamodb").create_table(**topology.table_definition(name))
        yield DynamoStore(name)


class Recorder:
    """Runs operations on one store, noting each answer or domain error."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.log: list[Any] = []

    def __call__(self, op: str, *args: Any, **kwargs: Any) -> Any:
        try:
            answer = getattr(self.store, op)(*args, **kwargs)
        except ConditionFailedError as exc:
            self.log.append((op, "ConditionFailedError", exc.current))
            return exc
        except TidegateError as exc:
            self.log.append((op, type(exc).__name__))
            return exc
        if hasattr(answer, "__next__"):
            answer = list(answer)
        self.log.append((op, answer))
        return answer

    def contents(self, *pks: str) -> list[Any]:
        return [self.store.query_partition(pk) for pk in pks] + [
            sorted(self.store.query_open(INDEX, 2**62), key=lambda i: (i["PK"], i["SK"]))
        ]


def _pane(pk: str, start: int, ver: int, n: int, first_ws: int, open_sk: int) -> dict[str, Any]:
    return {"PK": pk, "SK": keys.pane_sk(start), "acc": {"count:*": n}, "n": n, "ver": ver,
            "first_ws": first_ws, "next_ws": first_ws, "hw": {"shard-0": "0" * 63 + str(n)},
            "open_pk": INDEX, "open_sk": open_sk}


def groups_and_panes(run: Recorder) -> None:
    run("write_group", _pane(PK_A, 0, 1, 1, 0, 10), None)
    run("write_group", _pane(PK_A, 0, 1, 1, 0, 10), None)  # exists: lost
    run("write_group", _pane(PK_A, 0, 2, 3, 0, 10), 1)
    run("write_group", _pane(PK_A, 0, 2, 4, 0, 10), 1)  # stale version: lost
    run("write_group", _pane(PK_A, 10, 1, 2, 10, 20), None)
    run("freeze_pane", PK_B, keys.pane_sk(0), 0)  # no pane
    run("freeze_pane", PK_B, keys.pane_sk(0), 0, unread=True)
    run("freeze_pane", PK_A, keys.pane_sk(10), 0, unread=True)  # begins after window 0
    run("freeze_pane", PK_A, keys.pane_sk(0), 0, unread=True)
    run("freeze_pane", PK_A, keys.pane_sk(0), 0)  # frozen already: as it stands
    run("write_group", _pane(PK_A, 0, 3, 5, 0, 10), 2)  # the freeze moved `ver`: lost
    run("freeze_pane", PK_A, keys.pane_sk(10), 10)
    run("move_pane_on", PK_A, keys.pane_sk(10), 10, 20, [10], 30, 999)
    run("move_pane_on", PK_A, keys.pane_sk(10), 10, 20, [10], 30, 999)  # past it: lost
    run("move_pane_on", PK_A, keys.pane_sk(0), 0, 10, [0], None, 999)  # leaves the index
    run("batch_get", [(PK_A, keys.pane_sk(0)), (PK_B, "nothing"), (PK_A, keys.pane_sk(10))])
    run("query_range", PK_A, keys.pane_sk(0), keys.pane_sk(5))
    run("query_open", INDEX, 25)
    run("query_open", INDEX, 30)
    run("count_open", INDEX, 2**62, 10)


def watermarks(run: Recorder) -> None:
    run("advance_partition_watermark", META, WM0, 100, 102, 1, "05")
    run("advance_partition_watermark", META, WM0, 90, 92, 2, None)  # lower: lost
    run("advance_partition_watermark", META, WM0, 110, 112, 3, "04")  # position back: lost
    run("hold_partition_watermark", META, WM0, 120, 4)
    run("hold_partition_watermark", META, WM0, 119, 5)  # an earlier pending: lost
    run("touch_partition", META, WM0, 6, False, "03")  # position back: lost
    run("touch_partition", META, WM0, 7, False)
    run("touch_partition", META, WM0, 8, True, "06")
    run("record_position", META, WM0, "06")  # not further: lost
    run("record_position", META, WM0, "07")
    run("record_position", META, keys.watermark_sk("shard-1"), "01")  # a new item
    run("advance_pipeline_watermark", META, keys.PIPELINE_SK, 50)
    run("advance_pipeline_watermark", META, keys.PIPELINE_SK, 40)
    run("advance_pipeline_watermark", META, keys.PIPELINE_SK, 50)
    run("advance_pipeline_watermark", META, keys.PIPELINE_SK, 60)


def results(run: Recorder) -> None:
    w = keys.window_sk(0)
    first = {"PK": PK_A, "SK": w, "state": PENDING, "result_json": "{1}", "n": 1, "version": 1,
             "open_pk": INDEX, "open_sk": 5}
    run("create_once", first)
    run("create_once", {**first, "result_json": "{other}"})  # claimed: the first comes back
    run("claim_next_version", PK_A, w, PENDING, "{2}", 2, 2)  # v1 not published: lost
    run("mark_published", PK_A, w, 2)  # not that version: lost
    run("mark_emitted", PK_A, w, 99)  # not CLOSING: lost
    run("mark_published", PK_A, w, 1)
    run("claim_next_version", PK_A, w, CLOSING, "{2}", 2, 3)  # v2 is not published: lost
    run("claim_next_version", PK_A, w, CLOSING, "{2}", 2, 2)
    run("mark_emitted", PK_A, w, 99)
    run("mark_emitted", PK_A, w, 99)  # marked already: lost
    run("get", PK_A, w)
    run("get", PK_A, keys.window_sk(10))


def sessions(run: Recorder) -> None:
    open_item = {"PK": PK_B, "SK": "S#open", "ver": 1, "n": 3, "open_pk": INDEX, "open_sk": 7,
                 "sessions": [{"start": 0, "last": 1, "acc": {"count:*": 2}, "n": 2},
                              {"start": 9, "last": 9, "acc": {"count:*": 1}, "n": 1}]}
    run("write_group", open_item, None)
    result = {"PK": PK_B, "SK": "W#0#6", "state": CLOSING, "session": True, "result_json": "{}",
              "n": 2, "version": 1, "open_pk": INDEX, "open_sk": 7}
    rest = [{"start": 9, "last": 9, "acc": {"count:*": 1}, "n": 1}]
    run("close_sessions", PK_B, "S#open", 2, [result], rest, 1, 14)  # stale version
    run("close_sessions", PK_B, "S#open", 1, [result], rest, 1, 14)
    run("close_sessions", PK_B, "S#open", 2, [result], [], 0, None)  # result exists already
    run("close_sessions", PK_B, "S#open", 2,
        [{**result, "SK": "W#9#14", "n": 1}], [], 0, None)  # the last one: out of the index


def versions(run: Recorder) -> None:
    active = {"PK": "M#p", "SK": "ACTIVE", "active": 1, "switched_at": 0, "handover": {}}
    run("create_once", active)
    run("create_once", {**active, "active": 5})
    args = ("M#p", "ACTIVE")
    run("switch_active_version", *args, 2, 3, {}, 1, META, keys.PIPELINE_SK, None)  # not 2
    run("switch_active_version", *args, 1, 2, {"1": {"until": 50}}, 1, META, keys.PIPELINE_SK,
        50)  # no watermark stored: lost
    run("switch_active_version", *args, 1, 2, {"1": {"until": None}}, 1, META,
        keys.PIPELINE_SK, None)
    run("advance_pipeline_watermark", "M#p#v2", keys.PIPELINE_SK, 70)
    run("switch_active_version", *args, 2, 3, {"2": {"until": 60}}, 2, "M#p#v2",
        keys.PIPELINE_SK, 60)  # the watermark moved on: lost
    run("switch_active_version", *args, 2, 3, {"2": {"until": 70}}, 2, "M#p#v2",
        keys.PIPELINE_SK, 70)
    run("get", "M#p", "ACTIVE")
    run("write_group", {"PK": "A#p#v2#x", "SK": "P#1", "ver": 1, "expire_at": 10}, None)
    run("write_group", {"PK": "A#p#v2#y", "SK": "P#1", "ver": 1}, None)
    run("expire_items", "A#p#v2#", "M#p#v2", 20)
    run("expire_items", "A#p#v2#", "M#p#v2", 20)  # not lower than before: none


def bundles(run: Recorder) -> None:
    bundle = {"PK": "B#p#v1#P#0", "SK": "shard-0#05#0000", "data": b"\x78\x9c\x03\x00",
              "n": 3, "expire_at": 99}
    run("write_bundles", [bundle], META, WM0, "05", 7, 1, "BUNDLED", [0, 10])
    run("write_bundles", [bundle], META, WM0, "05", 7, 2, "BUNDLED", [0])  # retried: lost
    run("write_bundles", [{**bundle, "SK": "shard-0#04#0000"}], META, WM0, "04", 6, 3,
        "BUNDLED", [20])  # behind the position: lost, and no bundle left behind
    run("write_bundles", [{**bundle, "SK": "shard-0#06#0000"}], META, WM0, "06", 9, 4,
        "BUNDLED", [20])
    run("advance_bundle_progress", META, "BUNDLED", 10, 5, [0])  # expected none: lost
    run("advance_bundle_progress", META, "BUNDLED", 10, None, [0])
    run("advance_bundle_progress", META, "BUNDLED", 30, 10, [10, 20])  # the set empties
    run("get", META, "BUNDLED")
    run("keep_until", "B#p#v1#P#0", "shard-0#05#0000", 200)  # raised
    run("keep_until", "B#p#v1#P#0", "shard-0#05#0000", 150)  # never lowered
    run("keep_until", "B#p#v1#P#0", "shard-0#99#0000", 300)  # gone: not recreated
    run("get", "B#p#v1#P#0", "shard-0#05#0000")
    run("get", "B#p#v1#P#0", "shard-0#99#0000")


SCRIPTS: dict[str, tuple[Callable[[Recorder], None], tuple[str, ...]]] = {
    "bundles": (bundles, (META, "B#p#v1#P#0")),
    "groups_and_panes": (groups_and_panes, (PK_A, PK_B)),
    "watermarks": (watermarks, (META,)),
    "results": (results, (PK_A,)),
    "sessions": (sessions, (PK_B,)),
    "versions": (versions, ("M#p", "M#p#v2", "A#p#v2#x", "A#p#v2#y")),
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_both_backends_answer_alike(name: str, dynamo: DynamoStore) -> None:
    script, pks = SCRIPTS[name]
    memory, db = Recorder(MemoryStore()), Recorder(dynamo)
    script(memory)
    script(db)

    for mine, theirs in zip(memory.log, db.log, strict=True):
        assert mine == theirs
    assert memory.contents(*pks) == db.contents(*pks)
    assert any(entry[1] == "ConditionFailedError" or entry[1] == "TransactionConflictError"
               for entry in db.log)  # the script met lost races, not only wins


def test_a_lost_claim_carries_the_winning_item() -> None:
    # By hand, one answer the comparison above relies on
    store = MemoryStore()
    item = {"PK": PK_A, "SK": "W#1", "state": CLOSING, "n": 2}
    store.create_once(item)
    with pytest.raises(ConditionFailedError) as lost:
        store.create_once({**item, "n": 3})
    assert lost.value.current == {**item, "n": Decimal(2)}


def test_a_session_close_on_a_stale_read_changes_nothing(dynamo: DynamoStore) -> None:
    for store in (MemoryStore(), dynamo):
        store.write_group({"PK": PK_B, "SK": "S#open", "ver": 2, "n": 1, "sessions": []}, None)
        result = {"PK": PK_B, "SK": "W#new", "state": CLOSING}
        with pytest.raises(TransactionConflictError):
            store.close_sessions(PK_B, "S#open", 1, [result], [], 0, None)
        assert store.get(PK_B, "W#new") is None
        assert store.get(PK_B, "S#open") == {"PK": PK_B, "SK": "S#open", "ver": Decimal(2),
                                             "n": Decimal(1), "sessions": []}


@pytest.mark.parametrize("backend", [MemoryStore, DynamoStore])
def test_each_backend_offers_every_operation_with_its_signature(backend: type) -> None:
    operations = [name for name, value in vars(StateStore).items()
                  if callable(value) and not name.startswith("_")]
    assert "write_group" in operations and "close_sessions" in operations
    for name in operations:
        assert inspect.signature(getattr(backend, name)) == inspect.signature(
            getattr(StateStore, name)), name

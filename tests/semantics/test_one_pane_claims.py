"""A tumbling window has one pane: the closer freezes it without reading it first, and every
answer the read used to give (absent, frozen already, past the window) still comes through."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.support import BASE_MS, aggregates_of, deployed, line, seq
from tidegate.closer import CLOSING
from tidegate.spec import Pipeline
from tidegate.state import keys

B = BASE_MS
AGGREGATES = {"n": {"op": "count"}, "total": {"op": "sum", "field": "v"}}


@pytest.fixture
def pipeline(make_pipeline: Any) -> Pipeline:
    return make_pipeline(aggregates=AGGREGATES, index_shards=1)


class Calls:
    """Counts the DynamoDB operations a closer's client makes."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.ops: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.db, name)

        def counted(**kwargs: Any) -> Any:
            self.ops[name] = self.ops[name] + 1
            return call(**kwargs)

        return counted


def _deliver(env: Any, users: list[str]) -> None:
    records = []
    for user in users:
        records += [line(user, B + 1_000, 1), line(user, B + 2_000, 2)]
    assert env.deliver([(seq(i), r) for i, r in enumerate(records)]) == {"batchItemFailures": []}


def _one_key(env: Any, pipeline: Pipeline) -> tuple[Any, str]:
    """Key "a" with two events in window [B, B + 10 s): the closer, and the key's PK."""
    _deliver(env, ["a"])
    return env.closer.current_closer(), keys.key_pk(pipeline.name, pipeline.state_version, '["a"]')


def test_a_tumbling_claim_writes_twice_and_reads_no_pane(moto_url: str, pipeline: Pipeline) -> None:
    users = [f"u{i}" for i in range(7)]
    with deployed(pipeline, moto_url) as env:
        _deliver(env, users)
        closer = env.closer.current_closer()
        watermark = closer.current_watermark(flush=True)
        calls = Calls(closer.store.db)
        closer.store._client = calls

        # WHEN the closer claims the seven due windows of one index partition
        claims = closer.claims(watermark, closer.index_partitions())

    # THEN each window costs one freeze and one claim; the panes are read by neither a
    # query per window nor a get: one index query and one batch read find them all
    assert [c.result["aggregates"] for c in claims] == [{"n": 2, "total": 3}] * 7
    assert calls.ops == Counter(query=1, batch_get_item=1, update_item=7, put_item=7)


def test_a_pane_frozen_by_another_closer_gives_its_snapshot_and_is_not_written(
    moto_url: str, pipeline: Pipeline
) -> None:
    with deployed(pipeline, moto_url) as env:
        closer, pk = _one_key(env, pipeline)
        # GIVEN a closer that froze the pane, then died before claiming the window
        first = closer._freeze_alone(pk, B)
        # AND a racing ingest write to the pane's live content afterwards (a whole-item
        # put, as the ingest writes), which the snapshot must not see
        live = closer.store.get(pk, keys.pane_sk(B))
        assert live is not None
        raced = {**live, "acc": {**live["acc"], "count:*": 99}, "n": live["n"] + 1,
                 "ver": live["ver"] + 1}
        closer.store.write_group(raced, int(live["ver"]))

        # WHEN another closer freezes it again and claims the window
        again = closer._freeze_alone(pk, B)
        claim = closer._claim(pk, B, closer.current_watermark(flush=True), None)
        stored = closer.store.get(pk, keys.window_sk(B))

    acc_attr, n_attr = keys.snapshot_attrs(B)
    assert first is not None and again is not None
    # THEN the second freeze changed nothing and returned the first snapshot
    assert again["ver"] == first["ver"] + 1  # the racing put's, not a second freeze's
    assert (again[acc_attr], again[n_attr]) == (first[acc_attr], first[n_attr])
    assert int(again["n"]) == int(first[n_attr]) + 1
    # AND the window's result is the snapshot's content, not the live one (count 99)
    assert claim.result is not None and claim.result["aggregates"] == {"n": 2, "total": 3}
    assert stored is not None and stored["state"] == CLOSING


def test_no_pane_and_a_pane_past_the_window_give_no_result(
    moto_url: str, pipeline: Pipeline
) -> None:
    with deployed(pipeline, moto_url) as env:
        closer, pk = _one_key(env, pipeline)
        watermark = closer.current_watermark(flush=True)
        # GIVEN the window closed completely (pane moved past it)
        closer.close_partitions(watermark, closer.index_partitions())
        after = closer.store.get(pk, keys.pane_sk(B))
        # WHEN it is frozen again, and a window of a key that never had an event is claimed
        past = closer._freeze_alone(pk, B)
        nobody = keys.key_pk(pipeline.name, pipeline.state_version, '["nobody"]')
        absent = closer._freeze_alone(nobody, B)
        empty = closer._claim(nobody, B, watermark, None)
        created = closer.store.get(nobody, keys.pane_sk(B))
        out = env.collect(events_in=2)

    # THEN the closed pane is returned as it stands, unchanged; the absent one is None and
    # no item was created for it; its claim publishes nothing
    assert after is not None and past == after
    assert absent is None and created is None
    assert empty.result is None and empty.panes == []
    assert aggregates_of(out.results) == {("a", B): {"n": 2, "total": 3}}

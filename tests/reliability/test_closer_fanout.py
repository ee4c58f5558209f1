"""Closer fan-out: parallel workers, crashed workers, the coordinator's self-invocations, and
batched publishing that retries only the entries that failed."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.support import BASE_MS, aggregates_of, deployed, line, seq
from tidegate import fanout
from tidegate.closer import CLOSING, EMITTED
from tidegate.spec import Pipeline
from tidegate.state import keys

B = BASE_MS
AGGREGATES = {"n": {"op": "count"}, "total": {"op": "sum", "field": "v"}}
USERS = [f"u{i}" for i in range(24)]
SECOND = USERS[:6]  # these users have a second window too


@pytest.fixture
def pipeline(make_pipeline: Any) -> Pipeline:
    return make_pipeline(aggregates=AGGREGATES, index_shards=4)


def _events() -> list[tuple[str, bytes]]:
    records = []
    for user in USERS:
        records += [line(user, B + 1_000, 1), line(user, B + 2_000, 2)]
    records += [line(user, B + 12_000, 5) for user in SECOND]
    return [(seq(i), data) for i, data in enumerate(records)]


EXPECTED = {
    **{(user, B): {"n": 2, "total": 3} for user in USERS},
    **{(user, B + 10_000): {"n": 1, "total": 5} for user in SECOND},
}


def _left_in_index(closer: Any) -> int:
    return sum(closer.store.count_open(p, 2**62, 10**6) for p in closer.index_partitions())


def _window_states(closer: Any) -> Counter[str]:
    states: Counter[str] = Counter()
    for user in USERS:
        pk = keys.key_pk(closer.pipeline.name, closer.pipeline.state_version, f'["{user}"]')
        for item in closer.store.query_partition(pk):
            if item["SK"].startswith("W#"):
                states[item["state"]] += 1
    return states


@pytest.mark.parametrize("concurrency", [1, 4])
def test_parallel_workers_after_crashed_ones_close_every_window_once_in_content(
    moto_url: str, pipeline: Pipeline, concurrency: int
) -> None:
    with deployed(pipeline, moto_url) as env:
        assert env.deliver(_events()) == {"batchItemFailures": []}
        closer = env.closer.current_closer()
        closer.concurrency = concurrency  # windows of different keys side by side, too
        watermark = closer.current_watermark(flush=True)
        partitions = closer.index_partitions()

        # GIVEN a worker that died right after claiming its windows (CLOSING, unpublished)
        claimed = closer.claims(watermark, [partitions[0]])
        # AND one that died after publishing, before marking anything EMITTED
        dying = closer.claims(watermark, [partitions[1]])
        assert closer.sink.publish([c.result for c in dying if c.result]) == []
        early = {c.result["idempotency_key"] for c in dying if c.result}
        assert claimed and early  # both crashed workers had windows to lose

        # WHEN four workers run in parallel, with a fifth overlapping all of them
        orders = [fanout.WorkOrder(group, watermark) for group in fanout.split(partitions, 4)]
        orders.append(fanout.WorkOrder(partitions, watermark))
        fanout.ThreadWorkers(4).run(closer, orders)
        again = closer.close_partitions(watermark, partitions)
        out = env.collect(events_in=len(_events()))
        left, states = _left_in_index(closer), _window_states(closer)

    # THEN every window is published with its content, none differently twice (by_window
    # fails on two different results for one window), and nothing is left open
    assert aggregates_of(out.results) == EXPECTED
    assert again.windows_closed == 0
    assert left == 0
    assert states == Counter({EMITTED: len(EXPECTED)})
    copies = Counter(r["idempotency_key"] for r in out.results)
    assert len(copies) == len(EXPECTED)
    # The windows published before the crash were published again, under the same key.
    assert all(copies[key] >= 2 for key in early)
    for key in copies:
        assert len({json.dumps(r, sort_keys=True) for r in out.results
                    if r["idempotency_key"] == key}) == 1


class FlakySink:
    """Fails the entries at chosen positions of chosen calls; records every call."""

    max_batch = 10

    def __init__(self, failures: dict[int, set[int]]) -> None:
        self.failures = failures  # call number -> positions that fail in that call
        self.calls: list[list[str]] = []

    def publish(self, results: list[dict[str, Any]]) -> list[int]:
        call = len(self.calls)
        self.calls.append([r["idempotency_key"] for r in results])
        return sorted(i for i in self.failures.get(call, set()) if i < len(results))


def test_a_batch_publish_retries_exactly_the_failed_entries(
    moto_url: str, pipeline: Pipeline
) -> None:
    with deployed(pipeline, moto_url) as env:
        assert env.deliver(_events()) == {"batchItemFailures": []}
        closer = env.closer.current_closer()
        closer.retry_delay_s = 0
        closer.sink = sink = FlakySink({0: {2, 5, 9}})
        outcome = closer.run(flush=True)
        states = _window_states(closer)

    assert len(sink.calls) == 2
    first, second = sink.calls
    assert len(first) == len(EXPECTED)
    assert second == [first[2], first[5], first[9]]
    assert outcome.publish_failures == 0
    assert outcome.results_published == len(EXPECTED)
    assert states == Counter({EMITTED: len(EXPECTED)})


def test_an_entry_that_keeps_failing_stays_closing_and_goes_out_later_unchanged(
    moto_url: str, pipeline: Pipeline
) -> None:
    with deployed(pipeline, moto_url) as env:
        assert env.deliver(_events()) == {"batchItemFailures": []}
        closer = env.closer.current_closer()
        closer.retry_delay_s = 0
        # Position 4 of the first call is the only entry of the two retries: it fails each time.
        closer.sink = sink = FlakySink({0: {4}, 1: {0}, 2: {0}})
        outcome = closer.run(flush=True)
        stuck = sink.calls[0][4]
        states = _window_states(closer)
        closer.sink = healed = FlakySink({})
        later = closer.run(flush=True)

    assert sink.calls[1:] == [[stuck], [stuck]]
    assert outcome.publish_failures == 1
    assert states == Counter({EMITTED: len(EXPECTED) - 1, CLOSING: 1})
    assert healed.calls == [[stuck]]  # only the stuck window, under its first key
    assert later.windows_closed == 1 and later.publish_failures == 0


class FakeLambda:
    """Records asynchronous invocations; refuses those whose number is in `refuse`."""

    def __init__(self, refuse: set[int] | None = None) -> None:
        self.refuse = refuse or set()
        self.payloads: list[dict[str, Any]] = []
        self.functions: set[str] = set()

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict:  # noqa: N803
        assert InvocationType == "Event"
        number = len(self.payloads)
        self.functions.add(FunctionName)
        self.payloads.append(json.loads(Payload))
        if number in self.refuse:
            raise RuntimeError("AccessDeniedException: not allowed to invoke")
        return {"StatusCode": 202}


def test_the_coordinator_fans_out_to_itself_and_each_order_closes_its_partitions(
    moto_url: str, pipeline: Pipeline
) -> None:
    from tidegate_dev.local.context import LambdaContext

    with deployed(pipeline, moto_url) as env:
        assert env.deliver(_events()) == {"batchItemFailures": []}
        closer = env.closer.current_closer()
        # GIVEN more due panes than the threshold, and a function allowed 3 workers, one of
        # whose invocations is refused
        lam = FakeLambda(refuse={1})
        coordinator = fanout.Coordinator(
            closer, fanout.LambdaWorkers("closer", lam, size=3), threshold=5
        )
        outcome = coordinator.run(flush=True)
        inline = _window_states(closer)
        # WHEN each accepted invocation arrives at the handler as a worker
        for number, payload in enumerate(lam.payloads):
            if number not in lam.refuse:
                env.closer.handler(payload, LambdaContext("tidegate-closer"))
        out = env.collect(events_in=len(_events()))
        left = _left_in_index(closer)

    # THEN the partitions were split between three orders, none twice
    parts = [p for payload in lam.payloads for p in payload["partitions"]]
    assert sorted(parts) == sorted(closer.index_partitions())
    assert {payload["watermark"] for payload in lam.payloads} == {outcome.watermark}
    assert outcome.workers == 2 and outcome.refused == 1
    # the refused order was closed by the coordinator itself, the others by their workers
    assert 0 < sum(inline.values()) < len(EXPECTED)
    assert aggregates_of(out.results) == EXPECTED
    assert left == 0


def test_in_lambda_the_handler_coordinates_by_invoking_its_own_function(
    moto_url: str, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tidegate.aws
    from tidegate_dev.local.context import LambdaContext

    lam = FakeLambda()
    real_client = tidegate.aws.client
    monkeypatch.setattr(tidegate.aws, "client",
                        lambda service: lam if service == "lambda" else real_client(service))
    with deployed(pipeline, moto_url) as env:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "tg-test-closer")
        monkeypatch.setenv("TIDEGATE_FANOUT_THRESHOLD", "5")
        assert env.deliver(_events()) == {"batchItemFailures": []}
        answer = env.close(flush=True)
        for payload in lam.payloads:
            env.closer.handler(payload, LambdaContext("tg-test-closer"))
        out = env.collect(events_in=len(_events()))

    assert lam.functions == {"tg-test-closer"}
    assert answer["workers"] == 4 and answer["windows_closed"] == 0
    assert aggregates_of(out.results) == EXPECTED


def test_below_the_threshold_the_coordinator_closes_inline(
    moto_url: str, pipeline: Pipeline
) -> None:
    with deployed(pipeline, moto_url) as env:
        assert env.deliver(_events()) == {"batchItemFailures": []}
        lam = FakeLambda()
        closer = env.closer.current_closer()
        coordinator = fanout.Coordinator(
            closer, fanout.LambdaWorkers("closer", lam, size=3), threshold=len(EXPECTED)
        )
        outcome = coordinator.run(flush=True)

    assert lam.payloads == []
    assert outcome.windows_closed == len(EXPECTED)


def test_a_work_order_is_checked_before_anything_closes(
    moto_url: str, pipeline: Pipeline
) -> None:
    with deployed(pipeline, moto_url) as env:
        assert env.deliver(_events()) == {"batchItemFailures": []}
        closer = env.closer.current_closer()
        stored = closer.current_watermark()
        mine = closer.index_partitions()[0]
        with pytest.raises(ValueError, match=r"not index partitions of pipeline 'tg-test': "
                                             r"open#other#v1#0"):
            fanout.WorkOrder.parse({"partitions": [mine, "open#other#v1#0"],
                                    "watermark": stored}, closer)
        with pytest.raises(ValueError, match="past the stored pipeline watermark"):
            fanout.WorkOrder.parse({"partitions": [mine], "watermark": stored + 1}, closer)
        with pytest.raises(ValueError, match="`watermark` must be an integer"):
            fanout.WorkOrder.parse({"partitions": [mine], "watermark": "soon"}, closer)
        assert _left_in_index(closer) == len(USERS) + len(SECOND)


def test_split_gives_every_partition_to_exactly_one_group() -> None:
    parts = [f"open#p#v1#{n}" for n in range(10)]
    groups = fanout.split(parts, 4)
    assert [len(g) for g in groups] == [3, 3, 2, 2]
    assert sorted(p for g in groups for p in g) == sorted(parts)
    assert fanout.split(parts[:2], 8) == [[parts[0]], [parts[1]]]

"""The local Kinesis event source mapping keeps Lambda's tumbling-window contract: state
passed from each successful invocation to the next, a failed one retried with the previous
state, a response without state taken as a failure, a final invocation (no records) retried
until it succeeds, and an early end when the state passes 1 MB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tidegate.aws import client
from tidegate_dev.local.esm import MAX_WINDOW_STATE_BYTES, KinesisEventSourceMapping


@pytest.fixture
def stream(moto_url: str) -> Iterator[str]:
    from tidegate_dev.local.server import endpoint

    with endpoint(moto_url):
        name = f"tg-window-{uuid.uuid4().hex[:8]}"
        kinesis = client("kinesis")
        kinesis.create_stream(StreamName=name, ShardCount=1)
        kinesis.put_records(StreamName=name, Records=[
            {"Data": str(i).encode(), "PartitionKey": "k"} for i in range(6)])
        yield name


class Counter:
    """Sums the records of a window in its state; fails or misbehaves on request."""

    def __init__(self, fail_calls: set[int] = frozenset(), no_state_calls: set[int] = frozenset(),
                 big: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_calls, self.no_state_calls, self.big = fail_calls, no_state_calls, big

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        call = len(self.calls)
        self.calls.append({"records": len(event["Records"]), "state": dict(event["state"]),
                           "final": event["isFinalInvokeForWindow"],
                           "early": event["isWindowTerminatedEarly"]})
        if call in self.fail_calls:
            raise RuntimeError("crash after folding, before answering")
        if call in self.no_state_calls:
            return {"batchItemFailures": []}
        if event["isFinalInvokeForWindow"]:
            return {"state": {}, "batchItemFailures": []}
        seen = int(event["state"].get("n", "0")) + len(event["Records"])
        state = {"n": str(seen)}
        if self.big:
            state["pad"] = "x" * MAX_WINDOW_STATE_BYTES
        return {"state": state, "batchItemFailures": []}


def _drain(mapping: KinesisEventSourceMapping) -> None:
    while mapping.pending():
        mapping.deliver_round()


def test_state_flows_between_invocations_and_the_window_ends_with_a_final_one(
    stream: str,
) -> None:
    handler = Counter()
    mapping = KinesisEventSourceMapping(stream, handler, batch_size=2, tumbling_window_s=60,
                                        window_batches=2)
    _drain(mapping)

    assert [(c["records"], c["state"].get("n"), c["final"]) for c in handler.calls] == [
        (2, None, False), (2, "2", False), (0, "4", True),  # two batches, then the window ends
        (2, None, False), (0, "2", True),  # a fresh state; the shard runs dry: the end
    ]


def test_a_failed_invocation_is_retried_with_the_state_before_it(stream: str) -> None:
    handler = Counter(fail_calls={1}, no_state_calls={3})
    mapping = KinesisEventSourceMapping(stream, handler, batch_size=2, tumbling_window_s=60,
                                        window_batches=3)
    _drain(mapping)

    calls = [(c["records"], c["state"].get("n"), c["final"]) for c in handler.calls]
    # Call 1 crashed and call 3 answered without state: each is retried with the same state.
    assert calls[:5] == [(2, None, False), (2, "2", False), (2, "2", False), (2, "4", False),
                         (2, "4", False)]
    assert calls[5] == (0, "6", True)


def test_a_failing_final_invocation_is_retried_until_it_succeeds(stream: str) -> None:
    handler = Counter(fail_calls={2, 3})  # calls 0 and 1 take the records; 2 ends the window
    mapping = KinesisEventSourceMapping(stream, handler, batch_size=3, tumbling_window_s=60)
    _drain(mapping)

    finals = [c for c in handler.calls if c["final"]]
    assert [c["state"]["n"] for c in finals] == ["6", "6", "6"]  # two failures, then done


def test_a_state_past_1_mb_ends_the_window_early(stream: str) -> None:
    handler = Counter(big=True)
    mapping = KinesisEventSourceMapping(stream, handler, batch_size=2, tumbling_window_s=60)
    _drain(mapping)

    ends = [c for c in handler.calls if c["final"]]
    assert len(ends) == 3 and all(c["early"] for c in ends)

"""Kinesis event-source-mapping emulator.

Reads each shard with GetShardIterator/GetRecords, builds Lambda Kinesis events exactly as
AWS shapes them and invokes the handler in-process; the batch, retry and partial-failure
rules are delivery.py's, shared with the Kafka emulator.

With a tumbling window (`tumbling_window_s`, what the construct sets for `mini_batch`), the
mapping's window contract: each invocation gets the state the shard's last successful one
returned (a failed one is retried with the same state), a response without `state` is a
failed invocation, and the window ends with a final invocation (`isFinalInvokeForWindow`,
no records) that is retried until it succeeds before the shard goes on. A window ends when
its time has passed, when its state passes 1 MB (`isWindowTerminatedEarly`), after
`window_batches` batches when that is set (local runs use it to end windows at chosen
points), and when the shard has no more records.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tidegate.aws import client
from tidegate_dev.local.delivery import (  # noqa: F401 - re-exported for callers and tests
    BatchDelivery,
    DeliveryError,
    DeliveryStats,
    Handler,
    Lane,
)


@dataclass(frozen=True)
class StartingPosition:
    """Where the mapping starts reading each shard: TRIM_HORIZON (the default, as the
    deployed mapping), AT_TIMESTAMP (Lambda's other starting positions), or per shard AT a
    sequence number (local replays only; shards not named start at TRIM_HORIZON)."""

    kind: str = "TRIM_HORIZON"
    timestamp: datetime | None = None
    sequence_numbers: dict[str, str] = field(default_factory=dict)

    def iterator_args(self, shard_id: str) -> dict[str, Any]:
        if self.kind == "AT_TIMESTAMP":
            return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": self.timestamp}
        if shard_id in self.sequence_numbers:
            return {"ShardIteratorType": "AT_SEQUENCE_NUMBER",
                    "StartingSequenceNumber": self.sequence_numbers[shard_id]}
        return {"ShardIteratorType": "TRIM_HORIZON"}


# Lambda ends a tumbling window early when its state passes this.
MAX_WINDOW_STATE_BYTES = 1_048_576


@dataclass
class _Shard(Lane):
    iterator: str | None = None
    state: dict[str, Any] | None = None  # the open window's state; None: no window open
    window_opened_s: float = 0.0
    window_batches: int = 0


class KinesisEventSourceMapping(BatchDelivery):
    def __init__(
        self,
        stream: str,
        handler: Handler,
        batch_size: int = 100,
        function_name: str = "tidegate-ingest",
        max_retries: int = 50,
        bisect_on_error: bool = False,
        region: str = "us-east-1",
        chaos: Any = None,
        start: StartingPosition | None = None,
        tumbling_window_s: int | None = None,
        window_batches: int | None = None,
    ) -> None:
        super().__init__(handler, batch_size, function_name, max_retries, bisect_on_error, chaos)
        self.tumbling_window_s = tumbling_window_s or None
        self.window_batches = window_batches
        self.stream = stream
        self.region = region
        kinesis = client("kinesis")
        description = kinesis.describe_stream(StreamName=stream)["StreamDescription"]
        self.stream_arn = description["StreamARN"]
        self.shards: list[_Shard] = []
        start = start or StartingPosition()
        for shard in sorted(description["Shards"], key=lambda s: s["ShardId"]):
            iterator = kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], **start.iterator_args(shard["ShardId"])
            )["ShardIterator"]
            self.shards.append(_Shard(shard["ShardId"], iterator=iterator))
        self.lanes = self.shards

    # -- reading -------------------------------------------------------------------------
    def _fill(self, shard: _Shard) -> None:
        kinesis = client("kinesis")
        while len(shard.buffer) < self.batch_size and shard.iterator:
            out = kinesis.get_records(
                ShardIterator=shard.iterator, Limit=min(10_000, self.batch_size * 4)
            )
            shard.iterator = out.get("NextShardIterator")
            shard.buffer += out.get("Records", [])
            if not out.get("Records") and out.get("MillisBehindLatest", 0) == 0:
                shard.caught_up = True
                return
        shard.caught_up = False

    # -- tumbling windows ----------------------------------------------------------------
    def pending(self) -> bool:
        if super().pending():
            return True
        # No records left: every open window ends, as its time would.
        for shard in self.shards:
            if shard.state is not None:
                self._end_window(shard, early=False)
        return False

    def deliver_round(self) -> int:
        delivered = super().deliver_round()
        for shard in self.shards:
            if shard.state is None:
                continue
            too_big = len(json.dumps(shard.state)) > MAX_WINDOW_STATE_BYTES
            due = (self.window_batches is not None
                   and shard.window_batches >= self.window_batches) or (
                time.monotonic() - shard.window_opened_s >= (self.tumbling_window_s or 0))
            if too_big or due:
                self._end_window(shard, early=too_big)
        return delivered

    def _answered(self, lane: Any, response: Any) -> bool:
        if self.tumbling_window_s is None:
            return True
        if not isinstance(response, dict) or not isinstance(response.get("state"), dict):
            return False
        if lane.state is None:
            lane.window_opened_s = time.monotonic()
            lane.window_batches = 0
        lane.state = response["state"]
        lane.window_batches += 1
        return True

    def _window_fields(self, shard: _Shard, final: bool, early: bool) -> dict[str, Any]:
        opened = shard.window_opened_s if shard.state is not None else time.monotonic()
        start = datetime.now(UTC).timestamp() - (time.monotonic() - opened)
        iso = "%Y-%m-%dT%H:%M:%SZ"
        return {
            "window": {
                "start": datetime.fromtimestamp(start, UTC).strftime(iso),
                "end": datetime.fromtimestamp(start + (self.tumbling_window_s or 0),
                                              UTC).strftime(iso),
            },
            "state": dict(shard.state or {}),
            "shardId": shard.name,
            "eventSourceARN": self.stream_arn,
            "isFinalInvokeForWindow": final,
            "isWindowTerminatedEarly": early,
        }

    def _end_window(self, shard: _Shard, early: bool) -> None:
        """The window's final invocation, retried until it succeeds (the shard waits)."""
        event = {"Records": [], **self._window_fields(shard, final=True, early=early)}
        failures = 0
        while True:
            self.stats.invocations += 1
            try:
                response = self._call(event)
                if isinstance(response, dict) and "state" in response:
                    break
                error: BaseException = ValueError(f"final invocation answered {response!r}")
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # retried with the same state, as Lambda does
                error = exc
            failures += 1
            self.stats.retries += 1
            if failures > self.max_retries:
                raise DeliveryError(
                    f"{shard.name}: the final invocation of a window failed {failures} "
                    f"times; last error: {error!r}"
                ) from error
        shard.state = None
        shard.window_batches = 0

    # -- delivering ----------------------------------------------------------------------
    def _event(self, shard: _Shard, records: list[dict[str, Any]]) -> dict[str, Any]:
        event = self._records_event(shard, records)
        if self.tumbling_window_s is not None:
            event.update(self._window_fields(shard, final=False, early=False))
        return event

    def _records_event(self, shard: _Shard, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": r["PartitionKey"],
                        "sequenceNumber": r["SequenceNumber"],
                        "data": base64.b64encode(r["Data"]).decode("ascii"),
                        "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": f"{shard.name}:{r['SequenceNumber']}",
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/tidegate-ingest",
                    "awsRegion": self.region,
                    "eventSourceARN": self.stream_arn,
                }
                for r in records
            ]
        }

    def _failure_index(
        self, lane: _Shard, batch: list[dict[str, Any]], identifiers: list[Any]
    ) -> int | None:
        positions = [r["SequenceNumber"] for r in batch]
        if not identifiers or any(i not in positions for i in identifiers):
            return None
        return min(positions.index(i) for i in identifiers)

    def _position(self, record: dict[str, Any]) -> str:
        return str(record["SequenceNumber"])

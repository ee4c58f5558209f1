"""Kinesis event-source-mapping emulator.

Reads each shard with GetShardIterator/GetRecords, builds Lambda Kinesis events exactly as
AWS shapes them and invokes the handler in-process; the batch, retry and partial-failure
rules are delivery.py's, shared with the Kafka emulator.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
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


@dataclass
class _Shard(Lane):
    iterator: str | None = None


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
    ) -> None:
        super().__init__(handler, batch_size, function_name, max_retries, bisect_on_error, chaos)
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

    # -- delivering ----------------------------------------------------------------------
    def _event(self, shard: _Shard, records: list[dict[str, Any]]) -> dict[str, Any]:
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

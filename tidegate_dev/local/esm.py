"""Kinesis event-source-mapping emulator.

Reads each shard with GetShardIterator/GetRecords, builds Lambda Kinesis events exactly as
AWS shapes them, invokes the handler in-process and applies AWS's rules:

* ReportBatchItemFailures: an empty list is success; otherwise the mapping checkpoints just
  before the LOWEST reported sequence number and retries from it, including the records
  after it that succeeded; an identifier that is not in the batch fails the whole batch.
* A handler error retries the whole batch; with bisect, a failing batch is split in two.
* Batches of one shard are delivered in order, one at a time.

Local runs keep batch boundaries stable where AWS leaves them open: a retry after a partial
failure covers the rest of the SAME batch (AWS may append newer records), a failed batch is
retried at once (AWS shards progress concurrently), and bisect is off by default. Then the
records of a batch are judged against the same watermark however often they are retried, and
a run with injected faults gives the results of a clean one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidegate.aws import client
from tidegate_dev.local.context import LambdaContext

Handler = Callable[[dict[str, Any], Any], Any]


class DeliveryError(RuntimeError):
    """A batch kept failing past the retry limit."""


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None
    buffer: list[dict[str, Any]] = field(default_factory=list)
    caught_up: bool = False
    consecutive_failures: int = 0
    limit: int | None = None  # the next batch's size while retrying or bisecting


@dataclass
class DeliveryStats:
    invocations: int = 0
    records_delivered: int = 0
    records_checkpointed: int = 0
    retries: int = 0
    handler_errors: int = 0
    duplicate_deliveries: int = 0


class KinesisEventSourceMapping:
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
    ) -> None:
        self.stream = stream
        self.handler = handler
        self.batch_size = batch_size
        self.function_name = function_name
        self.max_retries = max_retries
        self.bisect_on_error = bisect_on_error
        self.region = region
        self.chaos = chaos
        self.stats = DeliveryStats()
        kinesis = client("kinesis")
        description = kinesis.describe_stream(StreamName=stream)["StreamDescription"]
        self.stream_arn = description["StreamARN"]
        self.shards: list[_Shard] = []
        for shard in sorted(description["Shards"], key=lambda s: s["ShardId"]):
            iterator = kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            self.shards.append(_Shard(shard["ShardId"], iterator))

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

    def pending(self) -> bool:
        """True while any shard has records not yet successfully processed."""
        for shard in self.shards:
            if not shard.buffer:
                self._fill(shard)
            if shard.buffer:
                return True
        return False

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
                    "eventID": f"{shard.shard_id}:{r['SequenceNumber']}",
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/tidegate-ingest",
                    "awsRegion": self.region,
                    "eventSourceARN": self.stream_arn,
                }
                for r in records
            ]
        }

    def deliver_round(self) -> int:
        """One batch per shard that has records, each retried until it succeeds; returns
        how many batches were delivered."""
        delivered = 0
        for shard in self.shards:
            if len(shard.buffer) < self.batch_size:
                self._fill(shard)
            if shard.buffer:
                while not self._deliver(shard):
                    pass
                delivered += 1
        return delivered

    def _invoke(self, shard: _Shard, batch: list[dict[str, Any]]) -> Any:
        event = self._event(shard, batch)
        context = LambdaContext(self.function_name)
        if self.chaos is None:
            return self.handler(event, context)
        with self.chaos.invocation("ingest"):
            return self.handler(event, context)

    def _deliver(self, shard: _Shard) -> bool:
        """Deliver the shard's next batch; True when it is done (checkpointed)."""
        size = min(self.batch_size, shard.limit or self.batch_size)
        batch = shard.buffer[:size]
        self.stats.invocations += 1
        self.stats.records_delivered += len(batch)
        try:
            response = self._invoke(shard, batch)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a function error or crash, as Lambda sees it
            self.stats.handler_errors += 1
            self._failed(shard, exc)
            if self.bisect_on_error and len(batch) > 1:
                shard.limit = max(1, len(batch) // 2)
            else:
                shard.limit = size
            return False
        failures = (response or {}).get("batchItemFailures") or []
        if not failures:
            del shard.buffer[:size]
            self.stats.records_checkpointed += len(batch)
            shard.consecutive_failures = 0
            shard.limit = None
            if self.chaos is not None:
                self._redeliver(shard, batch)
            return True
        positions = [r["SequenceNumber"] for r in batch]
        identifiers = [f.get("itemIdentifier") for f in failures]
        if any(i not in positions for i in identifiers):
            self._failed(shard, ValueError(f"malformed batchItemFailures {identifiers}"))
            shard.limit = size
            return False
        lowest = min(positions.index(i) for i in identifiers)
        del shard.buffer[:lowest]  # checkpoint before the lowest failure
        self.stats.records_checkpointed += lowest
        shard.limit = size - lowest  # the rest of this batch, and no newer records
        self._failed(shard, None)
        return False

    def _redeliver(self, shard: _Shard, batch: list[dict[str, Any]]) -> None:
        """Chaos: deliver an already checkpointed batch (or its tail) again, as Lambda may."""
        repeat = self.chaos.duplicate(batch)
        if not repeat:
            return
        self.stats.invocations += 1
        self.stats.duplicate_deliveries += 1
        try:
            self._invoke(shard, repeat)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            pass

    def _failed(self, shard: _Shard, error: BaseException | None) -> None:
        shard.consecutive_failures += 1
        self.stats.retries += 1
        if shard.consecutive_failures > self.max_retries:
            raise DeliveryError(
                f"{shard.shard_id}: batch at {shard.buffer[0]['SequenceNumber']} failed "
                f"{shard.consecutive_failures} times; last error: {error!r}"
            ) from error

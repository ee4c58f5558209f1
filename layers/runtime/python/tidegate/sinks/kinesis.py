"""Results to a Kinesis stream, partitioned by aggregation key (PutRecords, <= 500)."""

from __future__ import annotations

import json

from tidegate.aws import client
from tidegate.results import WindowResult, encode
from tidegate.sinks.base import chunks


class KinesisResultSink:
    max_batch = 500

    def __init__(self, stream: str) -> None:
        self.stream_arg = {"StreamARN": stream} if stream.startswith("arn:") else {
            "StreamName": stream
        }

    def publish(self, results: list[WindowResult]) -> list[int]:
        failed: list[int] = []
        offset = 0
        for chunk in chunks(results, self.max_batch):
            records = [
                {
                    "Data": encode(r),
                    "PartitionKey": json.dumps(r["key"], sort_keys=True)[:256],
                }
                for r in chunk
            ]
            out = client("kinesis").put_records(Records=records, **self.stream_arg)
            # PutRecords is not atomic: retry only the entries that failed, later.
            for i, entry in enumerate(out.get("Records", [])):
                if entry.get("ErrorCode"):
                    failed.append(offset + i)
            offset += len(chunk)
        return failed

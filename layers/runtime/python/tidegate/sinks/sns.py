"""Results to an SNS topic (PublishBatch, <= 10)."""

from __future__ import annotations

from tidegate.aws import client
from tidegate.results import WindowResult, encode
from tidegate.sinks.base import chunks


class SnsResultSink:
    max_batch = 10

    def __init__(self, topic_arn: str) -> None:
        self.topic_arn = topic_arn

    def publish(self, results: list[WindowResult]) -> list[int]:
        failed: list[int] = []
        offset = 0
        for chunk in chunks(results, self.max_batch):
            entries = [
                {"Id": str(i), "Message": encode(r).decode("utf-8")} for i, r in enumerate(chunk)
            ]
            out = client("sns").publish_batch(
                TopicArn=self.topic_arn, PublishBatchRequestEntries=entries
            )
            failed += [offset + int(f["Id"]) for f in out.get("Failed", [])]
            offset += len(chunk)
        return failed

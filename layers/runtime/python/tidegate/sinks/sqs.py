"""Results to an SQS queue (SendMessageBatch, <= 10)."""

from __future__ import annotations

from tidegate.aws import client
from tidegate.results import WindowResult, encode
from tidegate.sinks.base import chunks


class SqsResultSink:
    max_batch = 10

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url
        self.fifo = queue_url.endswith(".fifo")

    def publish(self, results: list[WindowResult]) -> list[int]:
        failed: list[int] = []
        offset = 0
        for chunk in chunks(results, self.max_batch):
            entries = []
            for i, r in enumerate(chunk):
                entry = {"Id": str(i), "MessageBody": encode(r).decode("utf-8")}
                if self.fifo:
                    # FIFO queues drop a repeat of the same idempotency key for 5 minutes.
                    entry["MessageDeduplicationId"] = r["idempotency_key"]
                    entry["MessageGroupId"] = r["idempotency_key"][:8]
                entries.append(entry)
            out = client("sqs").send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            failed += [offset + int(f["Id"]) for f in out.get("Failed", [])]
            offset += len(chunk)
        return failed

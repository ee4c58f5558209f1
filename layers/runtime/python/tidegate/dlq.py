"""Dead-letter and late outputs: SQS queues of records that were not aggregated.

Messages carry the reason, the detail, the source coordinates and the original bytes, so a
record can be found in the log, repaired and redriven. Delivery is at least once: a retried
batch may send a record twice, with the same coordinates, which identify it.
"""

from __future__ import annotations

import json
from typing import Any

from tidegate.aws import client
from tidegate.sources.records import SourceRecord

# SQS messages hold 256 KiB; JSON escaping and base64 need room. Larger records keep their
# coordinates (the log still has them) and a prefix of their bytes.
_MAX_DATA_CHARS = 180_000
_MAX_BATCH_BYTES = 250_000


def dead_letter(
    pipeline: str, record: SourceRecord, reason: str, detail: str, **extra: Any
) -> dict[str, Any]:
    data = record.data_b64
    message: dict[str, Any] = {
        "pipeline": pipeline,
        "reason": reason,
        "detail": detail,
        "source": record.coordinates(),
        "data_b64": data[:_MAX_DATA_CHARS],
    }
    if len(data) > _MAX_DATA_CHARS:
        message["data_truncated"] = True
        message["data_b64_length"] = len(data)
    if record.redrive_of is not None:
        # A redriven record failed again: it is still the record from these coordinates.
        message["redrive_of"] = record.redrive_of
        message["redrive_id"] = record.redrive_id
    message.update(extra)
    return message


class QueueOutput:
    """One SQS queue (DLQ or late output)."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, messages: list[dict[str, Any]]) -> list[int]:
        """Send all; return the indexes that failed."""
        failed: list[int] = []
        batch: list[tuple[int, str]] = []
        size = 0
        for i, message in enumerate(messages):
            body = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
            if batch and (len(batch) == 10 or size + len(body) > _MAX_BATCH_BYTES):
                failed += self._send_batch(batch)
                batch, size = [], 0
            batch.append((i, body))
            size += len(body)
        if batch:
            failed += self._send_batch(batch)
        return failed

    def _send_batch(self, batch: list[tuple[int, str]]) -> list[int]:
        entries = [{"Id": str(i), "MessageBody": body} for i, body in batch]
        out = client("sqs").send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return [int(f["Id"]) for f in out.get("Failed", [])]

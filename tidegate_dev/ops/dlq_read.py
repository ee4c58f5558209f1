"""Reading a dead-letter queue completely without consuming it (peek-and-release).

Messages are received with a visibility timeout, so each one is seen once and a listing is
complete, then made visible again at once (ChangeMessageVisibility 0). A receive with a zero
visibility timeout would consume nothing either, but every call returns a sample that may
repeat what the last one returned, so counts by reason would be guesses on a large queue. If
the command dies, the messages reappear by themselves when the timeout ends; the queue has
no redrive policy, so the receive counts this raises change nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tidegate.aws import client
from tidegate.schemas.eventtime import format_ms
from tidegate_dev.ops.common import Targets

_HIDE_S = 300  # longer than a listing or a redrive page takes
_MAX_MESSAGES = 100_000  # a listing stops here (a queue this deep is read in parts)


@dataclass
class Letter:
    """One dead-letter message as received."""

    message_id: str
    receipt: str
    body: dict[str, Any] | None  # None when the body is not a tidegate dead letter

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", "?")) if self.body else "(not a dead letter)"

    @property
    def pipeline(self) -> str | None:
        return self.body.get("pipeline") if self.body else None

    @property
    def source(self) -> dict[str, Any]:
        return dict(self.body.get("source") or {}) if self.body else {}

    @property
    def original(self) -> dict[str, Any]:
        """Where the record first entered the pipeline (before any earlier redrive)."""
        if self.body and isinstance(self.body.get("redrive_of"), dict):
            return dict(self.body["redrive_of"])
        return self.source

    def data(self) -> bytes | None:
        if not self.body or not isinstance(self.body.get("data_b64"), str):
            return None
        try:
            return base64.b64decode(self.body["data_b64"], validate=True)
        except (binascii.Error, ValueError):
            return None


def _letter(message: dict[str, Any]) -> Letter:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = None
    if not isinstance(body, dict) or "reason" not in body:
        body = None
    return Letter(message["MessageId"], message["ReceiptHandle"], body)


class Queue:
    """A dead-letter queue read without consuming it: received messages stay hidden until
    released (or deleted), so every message is seen once."""

    def __init__(self, url: str, confirm_wait_s: int = 1) -> None:
        self.url = url
        self.sqs = client("sqs")
        # Short polling asks only some of SQS's servers: an empty answer is confirmed with
        # a long poll, which asks them all. A local endpoint answers exactly either way.
        self.confirm_wait_s = confirm_wait_s
        self.held: dict[str, Letter] = {}

    def pages(self) -> Iterator[list[Letter]]:
        """Pages of messages not seen before, until the queue has no visible message."""
        while len(self.held) < _MAX_MESSAGES:
            page = self._receive(0)
            if not page and self.confirm_wait_s:
                page = self._receive(self.confirm_wait_s)
            if not page:
                return
            fresh = []
            for message in page:
                letter = _letter(message)
                # Seen before (the hide ran out): keep the newest receipt, list it once.
                known = letter.message_id in self.held
                self.held[letter.message_id] = letter
                if not known:
                    fresh.append(letter)
            if not fresh:
                return
            yield fresh

    def _receive(self, wait_s: int) -> list[dict[str, Any]]:
        out = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=_HIDE_S,
            WaitTimeSeconds=wait_s,
        )
        return list(out.get("Messages", []))

    def delete(self, letters: list[Letter]) -> None:
        for chunk in _chunks(letters, 10):
            out = self.sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt} for i, letter in enumerate(chunk)
            ])
            if out.get("Failed"):
                raise RuntimeError(f"deleting from {self.url}: {out['Failed'][:3]}")
            for letter in chunk:
                self.held.pop(letter.message_id, None)

    def release(self) -> None:
        """Make every held message visible again."""
        letters = list(self.held.values())
        for chunk in _chunks(letters, 10):
            self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt, "VisibilityTimeout": 0}
                for i, letter in enumerate(chunk)
            ])
        self.held.clear()


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def read_all(queue: Queue, reason: str | None = None, limit: int | None = None) -> list[Letter]:
    """Every message (of `reason`), up to `limit`; the queue is left as it was."""
    found: list[Letter] = []
    try:
        for page in queue.pages():
            found += [letter for letter in page if reason is None or letter.reason == reason]
            if limit is not None and len(found) >= limit:
                return found[:limit]
        return found
    finally:
        queue.release()


def summarize(letters: list[Letter]) -> list[dict[str, Any]]:
    """Per reason: messages, distinct records (delivery is at least once), arrival range."""
    rows: dict[str, dict[str, Any]] = {}
    for letter in letters:
        row = rows.setdefault(letter.reason, {"reason": letter.reason, "messages": 0,
                                              "records": set(), "first_arrival_ms": None,
                                              "last_arrival_ms": None, "example": None})
        row["messages"] += 1
        original = letter.original
        row["records"].add((str(original.get("partition")), str(original.get("position"))))
        arrival = letter.source.get("arrival_ms")
        if isinstance(arrival, int):
            first, last = row["first_arrival_ms"], row["last_arrival_ms"]
            row["first_arrival_ms"] = arrival if first is None else min(first, arrival)
            row["last_arrival_ms"] = arrival if last is None else max(last, arrival)
        if row["example"] is None and letter.body:
            row["example"] = str(letter.body.get("detail", ""))
    out = []
    for row in sorted(rows.values(), key=lambda r: (-r["messages"], r["reason"])):
        out.append({**row, "records": len(row["records"])})
    return out


def describe(letter: Letter, targets: Targets) -> dict[str, Any]:
    """A message with its coordinates named as its source names them, and its data."""
    source = letter.source
    kafka = targets.pipeline.source.type == "msk"
    partition = str(source.get("partition"))
    where: dict[str, Any] = {}
    if kafka:
        topic, _, number = partition.rpartition("-")
        where = {"topic": topic, "partition": number, "offset": source.get("position")}
    else:
        where = {"stream": targets.source_stream, "shard": partition,
                 "sequence": source.get("position")}
    where["partition_key"] = source.get("partition_key")
    arrival = source.get("arrival_ms")
    where["arrival"] = format_ms(arrival) if isinstance(arrival, int) else None
    data = letter.data()
    shown: dict[str, Any] = {
        "message_id": letter.message_id,
        "pipeline": letter.pipeline,
        "reason": letter.reason,
        "detail": letter.body.get("detail") if letter.body else None,
        "source": where,
        "data": None if data is None else data.decode("utf-8", errors="backslashreplace"),
    }
    if letter.body and letter.body.get("data_truncated"):
        shown["data_truncated"] = True
    if letter.body and letter.body.get("redrive_of"):
        shown["redrive_of"] = letter.body["redrive_of"]
    return shown

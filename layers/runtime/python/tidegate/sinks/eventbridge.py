"""Results to an EventBridge bus (PutEvents, <= 10)."""

from __future__ import annotations

from tidegate.aws import client
from tidegate.results import WindowResult, encode
from tidegate.sinks.base import chunks


class EventBridgeResultSink:
    max_batch = 10

    def __init__(self, bus: str, source: str, detail_type: str) -> None:
        self.bus = bus
        self.source = source
        self.detail_type = detail_type

    def publish(self, results: list[WindowResult]) -> list[int]:
        failed: list[int] = []
        offset = 0
        for chunk in chunks(results, self.max_batch):
            entries = [
                {
                    "EventBusName": self.bus,
                    "Source": self.source,
                    "DetailType": self.detail_type,
                    "Detail": encode(r).decode("utf-8"),
                }
                for r in chunk
            ]
            out = client("events").put_events(Entries=entries)
            for i, entry in enumerate(out.get("Entries", [])):
                if entry.get("ErrorCode"):
                    failed.append(offset + i)
            offset += len(chunk)
        return failed

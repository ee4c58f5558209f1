"""A source record, whatever the log it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from tidegate.state.keys import position_mark


@dataclass(slots=True)
class SourceRecord:
    partition: str  # Kinesis shard id, or Kafka `topic-partition`
    position: str  # sequence number or offset, as the event source gave it
    data_b64: str
    arrival_ms: int
    partition_key: str | None = None
    # A redriven dead letter's id and original coordinates (tidegate/redrive.py).
    redrive_id: str | None = None
    redrive_of: dict[str, object] | None = None
    # Kafka record headers as Lambda gives them ([{name: [byte, ...]}]); None when there are
    # none (always for Kinesis), so the decoder's plain path stays the only path.
    headers: list[dict[str, list[int]]] | None = None
    # The position as a fixed-width string whose order is the numeric order; compared
    # against high-water marks several times a record, so computed once.
    mark: str = field(init=False)

    def __post_init__(self) -> None:
        self.mark = position_mark(self.position)

    def coordinates(self) -> dict[str, object]:
        return {
            "partition": self.partition,
            "position": self.position,
            "partition_key": self.partition_key,
            "arrival_ms": self.arrival_ms,
        }

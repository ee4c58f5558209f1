"""A second fix for the redrive tests: reads naive times as UTC-1 (the Azores)."""

from __future__ import annotations

from typing import Any


def repair_as_azores(record: dict[str, Any] | bytes) -> dict[str, Any] | None:
    if not isinstance(record, dict) or not isinstance(record.get("timestamp"), str):
        from examples.dlq_fix import repair

        return repair(record)
    return {**record, "timestamp": record["timestamp"] + "-01:00"}

"""An example fix for `tidegate dlq redrive --fix examples.dlq_fix:repair` (clickstream).

The demo dead-letters four kinds of record; two can be repaired, two cannot:

* a naive ISO time (`2026-01-01T00:00:00`): our producers stamp UTC, so say so;
* `action: refund`: the pipeline counts clicks and purchases; a refund is a purchase of a
  negative value;
* truncated JSON (arrives as bytes) and a record with no time at all: nothing to go on,
  so they stay in the dead-letter queue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def repair(record: dict[str, Any] | bytes) -> dict[str, Any] | None:
    if not isinstance(record, dict) or "timestamp" not in record:
        return None
    fixed = dict(record)
    stamp = fixed["timestamp"]
    if isinstance(stamp, str):
        try:
            parsed = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            fixed["timestamp"] = stamp + "+00:00"
    if fixed.get("action") == "refund":
        fixed["action"] = "purchase"
        fixed["value"] = -abs(float(fixed.get("value", 0)))
    return fixed

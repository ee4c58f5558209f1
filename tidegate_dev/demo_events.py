"""Generated click/purchase events: mostly in order, some out of order within the watermark
delay, some late, a few malformed. Reproducible from a seed."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

# Recent past: in the future-skew guard's terms these arrive long after they happened.
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def generate(count: int, users: int, seed: int, max_step_ms: int = 400) -> list[bytes]:
    """`max_step_ms` bounds the event-time step between events (a soak packs a million
    events into minutes of event time, so state stays the size a real minute has)."""
    rng = random.Random(seed)
    clock = BASE_MS
    lines: list[bytes] = []
    for i in range(count):
        clock += rng.randint(0, max_step_ms)
        roll = rng.random()
        t = clock
        if roll < 0.10:
            t = clock - rng.randint(0, 4_000)  # out of order, inside the 5 s delay
        elif roll < 0.12:
            t = clock - rng.randint(70_000, 120_000)  # behind a closed window: late
        user = f"u{1 + int(rng.paretovariate(1.2)) % users}"
        action = "purchase" if rng.random() < 0.1 else "click"
        value = round(rng.uniform(5, 120), 2) if action == "purchase" else 1
        event: dict[str, object] = {"userId": user, "timestamp": t, "action": action,
                                    "value": value}
        if i % 7 == 3:
            event["timestamp"] = datetime.fromtimestamp(t / 1000, tz=UTC).isoformat()
        line = json.dumps(event)
        if roll > 0.995:
            line = rng.choice([
                '{"userId": "u1", "timestamp": ',  # truncated JSON
                json.dumps({**event, "action": "refund"}),  # not in the enum
                json.dumps({**event, "timestamp": "2026-01-01T00:00:00"}),  # naive time
                json.dumps({"userId": user, "action": action, "value": value}),  # no time
            ])
        lines.append(line.encode("utf-8"))
    return lines

"""Processing time. Tests may pin it through the environment (see topology.ENV_CLOCK)."""

from __future__ import annotations

import os
import time

from tidegate.topology import ENV_CLOCK


def now_ms() -> int:
    pinned = os.environ.get(ENV_CLOCK)
    if pinned:
        return int(pinned)
    return time.time_ns() // 1_000_000

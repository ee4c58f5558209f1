"""Duration strings of the pipeline file (`250ms`, `5s`, `1m`, `1h`, `1d` or integer ms)."""

from __future__ import annotations

import re

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PATTERN = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")


def parse_duration_ms(value: object) -> int:
    """Return the duration in integer milliseconds, or raise ValueError naming the form."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 250ms, 5s, 1m, 1h, 1d or integer milliseconds")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            return int(match.group(1)) * _UNITS_MS[match.group(2)]
        if value.strip().isdigit():
            return int(value.strip())
    raise ValueError(
        f"{value!r} is not a duration; use 250ms, 5s, 1m, 1h, 1d or integer milliseconds"
    )


def format_duration_ms(ms: int) -> str:
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"

"""Event time: epoch-millisecond integers or ISO-8601 strings with an offset -> int ms."""

from __future__ import annotations

from datetime import UTC, datetime

# 9999-12-31T23:59:59.999Z: the last instant an ISO-8601 year of four digits can name.
MAX_EVENT_TIME_MS = 253_402_300_799_999


def _check_range(ms: int) -> int:
    if ms < 0:
        raise ValueError(f"event time {ms} is before 1970-01-01T00:00:00Z")
    if ms > MAX_EVENT_TIME_MS:
        raise ValueError(f"event time {ms} is after 9999-12-31T23:59:59.999Z")
    return ms


def to_epoch_ms(value: object) -> int:
    """Convert one event-time value; raise ValueError saying what is wrong with it."""
    if isinstance(value, bool):
        raise ValueError("event time must be epoch milliseconds or ISO-8601, not a boolean")
    if isinstance(value, int):
        return _check_range(value)
    if isinstance(value, float):
        if value.is_integer():
            return _check_range(int(value))
        raise ValueError("event time in epoch milliseconds must be a whole number")
    if isinstance(value, datetime):
        return _from_datetime(value, value.isoformat())
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value[:64]!r} is not an ISO-8601 time") from None
        return _from_datetime(parsed, value)
    raise ValueError("event time must be epoch milliseconds or an ISO-8601 string")


def _from_datetime(parsed: datetime, original: str) -> int:
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{original[:64]!r} has no UTC offset; naive times are ambiguous")
    # Subtracting aware datetimes never leaves the calendar; astimezone() can (year 10000).
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    # Integer arithmetic: float seconds would lose microseconds near year 9999.
    ms = (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000
    return _check_range(ms)


def format_ms(ms: int) -> str:
    """ISO-8601 UTC rendering for humans (tables, logs)."""
    if ms < 0 or ms > MAX_EVENT_TIME_MS:
        return str(ms)
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

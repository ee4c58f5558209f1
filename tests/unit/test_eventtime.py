"""Event time: epoch-ms integers or ISO-8601 with an offset, from 1970 up to year 9999."""

from __future__ import annotations

import pytest

from tidegate.schemas.eventtime import MAX_EVENT_TIME_MS, to_epoch_ms

LAST_MS_OF_9999 = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, by hand


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (0, 0),
        (1, 1),
        (1_700_000_000_000, 1_700_000_000_000),
        (LAST_MS_OF_9999, LAST_MS_OF_9999),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.001+00:00", 1),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T22:13:20.000+00:00", 1_700_000_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
        ("2023-11-14T17:43:20-04:30", 1_700_000_000_000),
        ("2023-11-14T22:13:20.123Z", 1_700_000_000_123),
        ("2023-11-14T22:13:20.123999Z", 1_700_000_000_123),  # microseconds truncate
        ("1970-01-01T01:00:00+01:00", 0),
        ("9999-12-31T23:59:59.999Z", LAST_MS_OF_9999),
        ("9999-12-31T23:59:59.999999+00:00", LAST_MS_OF_9999),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),  # leap day
    ],
)
def test_valid_event_times(value: int | str, ms: int) -> None:
    assert to_epoch_ms(value) == ms


def test_the_upper_bound_is_the_last_millisecond_of_year_9999() -> None:
    assert MAX_EVENT_TIME_MS == LAST_MS_OF_9999


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (-1, "before 1970"),
        (-1_700_000_000_000, "before 1970"),
        ("1969-12-31T23:59:59.999Z", "before 1970"),
        ("1970-01-01T00:59:59+01:00", "before 1970"),  # 1969 in UTC
        (LAST_MS_OF_9999 + 1, "after 9999"),
        (10**18, "after 9999"),
        ("2023-11-14T22:13:20", "no UTC offset"),
        ("2023-11-14", "no UTC offset"),
        ("yesterday", "not an ISO-8601"),
        ("", "not an ISO-8601"),
        ("1700000000000", "not an ISO-8601"),  # digits in a string are not epoch ms
        (1.5, "whole number"),
        (True, "boolean"),
        (None, "epoch milliseconds"),
        ([1], "epoch milliseconds"),
    ],
)
def test_invalid_event_times_raise_value_error_saying_why(value: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        to_epoch_ms(value)


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59.999-01:00",  # year 10000 in UTC
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
    ],
)
def test_iso_times_whose_utc_instant_leaves_the_calendar_are_value_errors(value: str) -> None:
    with pytest.raises(ValueError):
        to_epoch_ms(value)

"""The retry budget: botocore never sleeps past the handler's deadline."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tidegate.aws import OutOfTime, _guard_retry, retry_budget

THROTTLED = (SimpleNamespace(status_code=400), {})


def test_no_budget_never_stops_a_retry() -> None:
    assert _guard_retry(response=THROTTLED, attempts=5) is None


def test_a_retry_whose_longest_backoff_fits_the_budget_goes_ahead() -> None:
    with retry_budget(5.0):
        assert _guard_retry(response=THROTTLED, attempts=2) is None  # sleeps at most 2 s


def test_a_retry_whose_backoff_could_overrun_the_budget_is_stopped() -> None:
    with retry_budget(3.0), pytest.raises(OutOfTime, match="PutItem"):
        # the third attempt's backoff may last up to 4 s: past a 3 s budget
        _guard_retry(response=THROTTLED, attempts=3, event_name="needs-retry.dynamodb.PutItem")


def test_a_success_is_never_stopped_even_past_the_deadline() -> None:
    ok = (SimpleNamespace(status_code=200), {})
    with retry_budget(0.0):
        assert _guard_retry(response=ok, attempts=6) is None


def test_a_connection_error_counts_as_a_failed_attempt() -> None:
    with retry_budget(0.5), pytest.raises(OutOfTime):
        _guard_retry(caught_exception=ConnectionError("reset"), attempts=1)

"""each_in_flight: every item once, results in order, never more than N at once, the
caller's context in every worker, and the earliest failure raised after all have run."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from tidegate.in_flight import each_in_flight

_budget: contextvars.ContextVar[str] = contextvars.ContextVar("budget", default="none")


def test_every_item_once_in_order_at_most_n_at_once_on_n_threads() -> None:
    lock = threading.Lock()
    active = peak = 0
    threads: set[int] = set()
    seen: list[int] = []

    def work(i: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            threads.add(threading.get_ident())
            seen.append(i)
        time.sleep(0.002)  # a round trip: the others get to start meanwhile
        with lock:
            active -= 1
        return i * i

    assert each_in_flight(list(range(40)), work, 3) == [i * i for i in range(40)]
    assert sorted(seen) == list(range(40))
    assert peak == 3
    assert len(threads) == 3  # three workers for forty items, not a task per item


def test_workers_see_the_callers_context() -> None:
    _budget.set("12.5 s")
    assert each_in_flight(list(range(10)), lambda _: _budget.get(), 4) == ["12.5 s"] * 10


def test_every_item_runs_and_the_earliest_failure_is_raised() -> None:
    ran: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            ran.append(i)
        if i in (7, 3):
            raise ValueError(f"item {i}")
        return i

    with pytest.raises(ValueError, match="item 3"):
        each_in_flight(list(range(12)), work, 4)
    assert sorted(ran) == list(range(12))


def test_one_at_a_time_runs_in_this_thread() -> None:
    here = threading.get_ident()
    assert each_in_flight([1, 2, 3], lambda _: threading.get_ident(), 1) == [here] * 3

"""Up to N calls in flight: a few worker threads taking the next item in order.

The ingest writes a batch's groups and the closer a batch's windows this way: each call
waits on a DynamoDB round trip, so several in flight cut the batch's wall time. A
ThreadPoolExecutor task per item (hundreds per batch) cost more CPU than the work it
carried: a future, a queue hand-off and a context copy per item; on the bench's tumbling
batches the handler path fell from about 250,000 to 105,000 events/s per core with 8 in
flight. Here each of the N workers is one task: it takes the next index from a shared
counter (`next()` on an itertools.count is atomic in CPython), so items still start in
order and a slow call holds up only its own worker.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def each_in_flight(items: Sequence[T], work: Callable[[T], R], concurrency: int) -> list[R]:
    """`work(item)` for every item, up to `concurrency` at once; results in item order.

    Each worker runs in its own copy of the caller's context (a retry budget is a context
    variable). An exception from `work` is raised here once every item has run, the
    earliest item's first, as a pool of futures would.
    """
    if concurrency <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    results: list[R | None] = [None] * len(items)
    errors: dict[int, BaseException] = {}
    taken = itertools.count()
    size = len(items)

    def worker() -> None:
        for i in taken:
            if i >= size:
                return
            try:
                results[i] = work(items[i])
            except BaseException as exc:  # re-raised by the caller's thread below
                errors[i] = exc

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(contextvars.copy_context().run, worker)
                   for _ in range(min(concurrency, size))]
        for future in futures:
            future.result()
    if errors:
        raise errors[min(errors)]
    return results  # type: ignore[return-value]

"""Closer fan-out: one coordinator, many workers over the open-window index partitions.

The coordinator stores the pipeline watermark, then counts the due panes up to a threshold.
Below it the coordinator closes everything itself (one invocation, no fan-out cost). Above
it the index partitions are split into groups and each group goes to a worker with the
watermark: `{"partitions": [...], "watermark": W}`. Deployed, a worker is an asynchronous
invocation of the closer function itself; locally, a thread.

Workers close with the same conditional state machine as a single closer, so overlapping
or crashed workers are safe: a window's content is fixed by its first claim, a repeat
publishes the same bytes under the same idempotency key, and a window is left by the index
only once it is EMITTED, so the next run finds whatever a dead worker left.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from tidegate.closer import CloseOutcome, Closer

# Due panes above which a run fans out: below it one invocation closes them in seconds.
FANOUT_THRESHOLD = 2_000
# Asynchronous invocations per fan-out at most; partitions are grouped to fit.
MAX_LAMBDA_WORKERS = 64


@dataclass(frozen=True)
class WorkOrder:
    partitions: list[str]
    watermark: int

    def payload(self) -> dict[str, Any]:
        return {"partitions": self.partitions, "watermark": self.watermark}

    @classmethod
    def parse(cls, event: dict[str, Any], closer: Closer) -> WorkOrder:
        """A worker's payload, checked: only this pipeline's partitions, and a watermark the
        coordinator has stored (a larger one would close windows before their time)."""
        partitions, watermark = event.get("partitions"), event.get("watermark")
        if not isinstance(partitions, list) or not all(isinstance(p, str) for p in partitions):
            raise ValueError("closer work order: `partitions` must be a list of strings")
        if not isinstance(watermark, int) or isinstance(watermark, bool):
            raise ValueError("closer work order: `watermark` must be an integer (ms)")
        unknown = sorted(set(partitions) - set(closer.index_partitions()))
        if unknown:
            raise ValueError(
                f"closer work order: not index partitions of pipeline "
                f"{closer.pipeline.name!r}: {', '.join(unknown)}"
            )
        stored = closer.watermarks.read().floor
        if watermark > stored:
            raise ValueError(
                f"closer work order: watermark {watermark} is past the stored pipeline "
                f"watermark {stored}"
            )
        return cls(partitions, watermark)


def split(partitions: list[str], groups: int) -> list[list[str]]:
    """Round robin: crc32 spreads keys evenly over partitions, so equal counts are equal work."""
    groups = max(1, min(groups, len(partitions)))
    return [partitions[i::groups] for i in range(groups)]


def due_panes(closer: Closer, watermark: int, limit: int) -> int:
    """Due entries in the index, counted no further than `limit`."""
    counted = 0
    for index_pk in closer.index_partitions():
        counted += closer.store.count_open(index_pk, watermark, limit - counted)
        if counted >= limit:
            break
    return counted


class Workers(Protocol):
    size: int

    def run(self, closer: Closer, orders: list[WorkOrder]) -> CloseOutcome: ...


class ThreadWorkers:
    """Local mode: one thread per work order (the work is waiting on the store, not CPU)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def run(self, closer: Closer, orders: list[WorkOrder]) -> CloseOutcome:
        outcome = CloseOutcome(watermark=orders[0].watermark if orders else 0)
        with ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="closer") as pool:
            done = [
                pool.submit(closer.close_partitions, o.watermark, o.partitions) for o in orders
            ]
            for future in done:
                outcome.add(future.result())
        outcome.workers = len(orders)
        return outcome


class LambdaWorkers:
    """Deployed: asynchronous invocations of the closer function itself.

    An order whose invocation is refused (throttled, or the function may not invoke
    itself) is closed here, in the coordinator: slower, never skipped.
    """

    def __init__(self, function: str, lambda_client: Any | None = None,
                 size: int = MAX_LAMBDA_WORKERS) -> None:
        self.function = function
        self.size = size
        self._client = lambda_client

    def run(self, closer: Closer, orders: list[WorkOrder]) -> CloseOutcome:
        from tidegate.aws import client

        lam = self._client or client("lambda")
        outcome = CloseOutcome(watermark=orders[0].watermark if orders else 0)
        refused: list[WorkOrder] = []
        for order in orders:
            try:
                lam.invoke(
                    FunctionName=self.function,
                    InvocationType="Event",
                    Payload=json.dumps(order.payload()).encode("utf-8"),
                )
                outcome.workers += 1
            except Exception:
                refused.append(order)
        for order in refused:
            outcome.add(closer.close_partitions(order.watermark, order.partitions))
        outcome.refused = len(refused)
        return outcome


class Coordinator:
    def __init__(
        self,
        closer: Closer,
        workers: Workers | None,
        threshold: int = FANOUT_THRESHOLD,
    ) -> None:
        self.closer = closer
        self.workers = workers
        self.threshold = threshold

    def run(
        self, flush: bool = False, keep_going: Callable[[], bool] | None = None
    ) -> CloseOutcome:
        """`keep_going`: asked between batches when the coordinator closes inline."""
        closer = self.closer
        watermark = closer.current_watermark(flush)
        partitions = closer.index_partitions()
        if self.workers is None or self.workers.size <= 1 or len(partitions) == 1:
            return closer.close_partitions(watermark, partitions, keep_going=keep_going)
        if due_panes(closer, watermark, self.threshold + 1) <= self.threshold:
            return closer.close_partitions(watermark, partitions, keep_going=keep_going)
        orders = [WorkOrder(group, watermark) for group in split(partitions, self.workers.size)]
        return self.workers.run(closer, orders)


def work(
    closer: Closer, order: WorkOrder, keep_going: Callable[[], bool] | None = None
) -> CloseOutcome:
    """A worker invocation: close the order's partitions up to its watermark."""
    return closer.close_partitions(order.watermark, order.partitions, keep_going=keep_going)

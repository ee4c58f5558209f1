"""The batch rules of Lambda's stream event source mappings, shared by the Kinesis and the
Kafka emulators (esm.py, kafka.py), which only read their source and shape their events.

* A partial-failure response checkpoints just before the LOWEST reported record and the
  batch is retried from it, including records after it that succeeded; a response that
  names a record not in the batch fails the whole batch.
* A handler error (or crash) retries the whole batch; with bisect, it is split in two.
* Batches of one lane (shard, topic-partition) are delivered in order, one at a time.

Local runs keep batch boundaries stable where AWS leaves them open: a retry after a partial
failure covers the rest of the SAME batch (AWS may append newer records), a failed batch is
retried at once (AWS lanes progress concurrently), and bisect is off by default. Then the
records of a batch are judged against the same watermark however often they are retried, and
a run with injected faults gives the results of a clean one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidegate_dev.local.context import LambdaContext

Handler = Callable[[dict[str, Any], Any], Any]


class DeliveryError(RuntimeError):
    """A batch kept failing past the retry limit."""


@dataclass
class Lane:
    """One shard or topic-partition: what is read but not yet checkpointed."""

    name: str
    buffer: list[dict[str, Any]] = field(default_factory=list)
    caught_up: bool = False
    consecutive_failures: int = 0
    limit: int | None = None  # the next batch's size while retrying or bisecting


@dataclass
class DeliveryStats:
    invocations: int = 0
    records_delivered: int = 0
    records_checkpointed: int = 0
    retries: int = 0
    handler_errors: int = 0
    duplicate_deliveries: int = 0


class BatchDelivery:
    """Subclasses provide `lanes`, `_fill(lane)`, `_event(lane, batch)` and
    `_failure_index(lane, batch, identifiers)`."""

    lanes: list[Lane]

    def __init__(
        self,
        handler: Handler,
        batch_size: int,
        function_name: str,
        max_retries: int,
        bisect_on_error: bool,
        chaos: Any,
    ) -> None:
        self.handler = handler
        self.batch_size = batch_size
        self.function_name = function_name
        self.max_retries = max_retries
        self.bisect_on_error = bisect_on_error
        self.chaos = chaos
        self.stats = DeliveryStats()

    # -- source-specific -----------------------------------------------------------------
    def _fill(self, lane: Any) -> None:
        raise NotImplementedError

    def _event(self, lane: Any, batch: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    def _failure_index(
        self, lane: Any, batch: list[dict[str, Any]], identifiers: list[Any]
    ) -> int | None:
        """Index in `batch` of the lowest reported failure; None if one is malformed."""
        raise NotImplementedError

    def _position(self, record: dict[str, Any]) -> str:
        raise NotImplementedError

    def _answered(self, lane: Any, response: Any) -> bool:
        """Whether the response is one the mapping accepts (a tumbling window's must carry
        the state, which the mapping then keeps)."""
        return True

    # -- shared --------------------------------------------------------------------------
    def pending(self) -> bool:
        """True while any lane has records not yet successfully processed."""
        for lane in self.lanes:
            if not lane.buffer:
                self._fill(lane)
            if lane.buffer:
                return True
        return False

    def deliver_round(self) -> int:
        """One batch per lane that has records, each retried until it succeeds; returns
        how many batches were delivered."""
        delivered = 0
        for lane in self.lanes:
            if len(lane.buffer) < self.batch_size:
                self._fill(lane)
            if lane.buffer:
                while not self._deliver(lane):
                    pass
                delivered += 1
        return delivered

    def _invoke(self, lane: Lane, batch: list[dict[str, Any]]) -> Any:
        return self._call(self._event(lane, batch))

    def _call(self, event: dict[str, Any]) -> Any:
        """One invocation of the handler, through the chaos injector when there is one."""
        context = LambdaContext(self.function_name)
        if self.chaos is None:
            return self.handler(event, context)
        with self.chaos.invocation("ingest"):
            return self.handler(event, context)

    def _deliver(self, lane: Lane) -> bool:
        """Deliver the lane's next batch; True when it is done (checkpointed)."""
        size = min(self.batch_size, lane.limit or self.batch_size)
        batch = lane.buffer[:size]
        self.stats.invocations += 1
        self.stats.records_delivered += len(batch)
        try:
            response = self._invoke(lane, batch)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a function error or crash, as Lambda sees it
            self.stats.handler_errors += 1
            self._failed(lane, exc)
            bisect = self.bisect_on_error and len(batch) > 1
            lane.limit = max(1, len(batch) // 2) if bisect else len(batch)
            return False
        failures = (response or {}).get("batchItemFailures") or []
        if not self._answered(lane, response):
            self._failed(lane, ValueError(f"response without the window's state: {response!r}"))
            lane.limit = len(batch)
            return False
        if not failures:
            del lane.buffer[: len(batch)]
            self.stats.records_checkpointed += len(batch)
            lane.consecutive_failures = 0
            lane.limit = None
            if self.chaos is not None:
                self._redeliver(lane, batch)
            return True
        identifiers = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures]
        lowest = self._failure_index(lane, batch, identifiers)
        if lowest is None:
            self._failed(lane, ValueError(f"malformed batchItemFailures {identifiers}"))
            lane.limit = len(batch)
            return False
        del lane.buffer[:lowest]  # checkpoint before the lowest failure
        self.stats.records_checkpointed += lowest
        lane.limit = len(batch) - lowest  # the rest of this batch, and no newer records
        self._failed(lane, None)
        return False

    def _redeliver(self, lane: Lane, batch: list[dict[str, Any]]) -> None:
        """Chaos: deliver an already checkpointed batch (or its tail) again, as Lambda may."""
        repeat = self.chaos.duplicate(batch)
        if not repeat:
            return
        self.stats.invocations += 1
        self.stats.duplicate_deliveries += 1
        try:
            self._invoke(lane, repeat)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            pass

    def _failed(self, lane: Lane, error: BaseException | None) -> None:
        lane.consecutive_failures += 1
        self.stats.retries += 1
        if lane.consecutive_failures > self.max_retries:
            raise DeliveryError(
                f"{lane.name}: batch at {self._position(lane.buffer[0])} failed "
                f"{lane.consecutive_failures} times; last error: {error!r}"
            ) from error

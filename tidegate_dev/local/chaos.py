"""`--chaos SEED`: reproducible fault injection for local runs.

Faults, all drawn from one seeded generator:

* handler crashes at random AWS calls inside an invocation — before, between and after the
  conditional writes, mid-way through dead-lettering, between any two closer steps
  (`ChaosCrash` is a BaseException: it unwinds the handler as a dying process would);
* transient AWS errors answered instead of sending the request (throttling, 5xx), which
  botocore's retry mode sees as real and retries, and read timeouts;
* lost responses: a write that succeeded, reported to the caller as a timeout;
* duplicate deliveries of whole checkpointed batches and of their tails;
* two closers racing: one claims windows, a second runs in full, then the first publishes.

A run with faults must give the clean run's results and summary; a result may be published
more than once, always with the same idempotency key.

Call-level rates are set for an invocation of about `calls_per_invocation` AWS calls. A larger
invocation (a 5,000-record batch makes hundreds of writes) gets proportionally lower per-call
rates, so its chance of a crash stays that of a small one: with fixed per-call rates a big
batch almost never completes and a soak run makes no progress, which tests nothing more.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.retries.standard import ExponentialBackoff

WRITE_OPERATIONS = {
    "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem",
    "PutRecords", "PutRecord", "SendMessageBatch", "SendMessage", "PublishBatch", "PutEvents",
}
# JSON-protocol services answer errors as {"__type": ...}; these can be faked at HTTP level.
_THROTTLES = {
    "dynamodb": ["ProvisionedThroughputExceededException", "ThrottlingException",
                 "TransactionConflictException"],
    "kinesis": ["ProvisionedThroughputExceededException"],
    "sqs": [],
    "eventbridge": ["ThrottlingException"],
}


class ChaosCrash(BaseException):
    """The function died here (timeout, out of memory, killed) — nothing after it ran."""


def _drop_unflushed_metrics() -> None:
    """A dying process takes its unflushed metrics with it. Kept in this one, they pile up
    over crashed invocations until Powertools prints them at 100 values, disabled or not.
    Powertools' Metrics instances share one metric set, so any instance clears it."""
    from aws_lambda_powertools import Metrics

    Metrics().clear_metrics()


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data

    def read(self, *_: Any) -> bytes:
        return self.data


class Chaos:
    def __init__(
        self,
        seed: int,
        crash: float = 0.01,
        transient: float = 0.04,
        lost_response: float = 0.01,
        duplicate: float = 0.2,
        race: float = 0.3,
        calls_per_invocation: int = 20,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.p_crash = crash
        self.p_transient = transient
        self.p_lost = lost_response
        self.p_duplicate = duplicate
        self.p_race = race
        self.armed: str | None = None
        self.injected: Counter[str] = Counter()
        self.reference_calls = calls_per_invocation
        # Calls per invocation by function, a moving average; the scale of the call rates.
        self.typical_calls: dict[str, float] = {}
        self.calls = 0
        self.scale = 1.0

    # -- wiring --------------------------------------------------------------------------
    def hook(self, service: str, client: Any) -> None:
        """tidegate.aws.CLIENT_HOOKS entry: every client made during the run gets faults."""
        client.meta.events.register("before-send", self._before_send)
        client.meta.events.register("after-call", self._after_call)

    @contextmanager
    def invocation(self, function: str) -> Iterator[None]:
        """Faults apply only inside handler invocations, never to the runner's own calls."""
        typical = self.typical_calls.get(function, float(self.reference_calls))
        self.scale = min(1.0, self.reference_calls / typical)
        self.armed, self.calls = function, 0
        try:
            yield
        except ChaosCrash:
            _drop_unflushed_metrics()
            raise
        finally:
            self.armed = None
            self.typical_calls[function] = 0.8 * typical + 0.2 * self.calls

    # -- faults --------------------------------------------------------------------------
    def _before_send(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        if self.armed is None:
            return None
        event_name = kwargs.get("event_name", "")
        service = event_name.split(".")[1] if event_name.count(".") >= 2 else ""
        self.calls += 1
        roll = self.rng.random() / self.scale
        if roll < self.p_crash:
            self.injected[f"crash:{self.armed}"] += 1
            raise ChaosCrash(f"injected crash in {self.armed} before {event_name}")
        roll -= self.p_crash
        if roll < self.p_transient:
            codes = _THROTTLES.get(service, [])
            if codes and self.rng.random() < 0.6:
                code = self.rng.choice(codes)
                self.injected[f"throttle:{code}"] += 1
                return self._error(request, 400, code)
            if service in _THROTTLES and self.rng.random() < 0.7:
                self.injected["http:500"] += 1
                return self._error(request, 500, "InternalServerError")
            self.injected["timeout"] += 1
            raise ReadTimeoutError(endpoint_url=request.url)
        return None

    def _after_call(self, model: Any, **kwargs: Any) -> None:
        if self.armed is None or model.name not in WRITE_OPERATIONS:
            return
        if self.rng.random() < self.p_lost * self.scale:
            self.injected["lost-response"] += 1
            raise ReadTimeoutError(endpoint_url=f"{model.name} (response lost after success)")

    @staticmethod
    def _error(request: Any, status: int, code: str) -> AWSResponse:
        body = json.dumps({"__type": code, "message": "injected by --chaos"}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}
        return AWSResponse(request.url, status, headers, _Body(body))

    # -- delivery and closing ------------------------------------------------------------
    def duplicate(self, batch: list[Any]) -> list[Any] | None:
        """A batch (or its tail) to deliver again after it was checkpointed, or None."""
        if self.rng.random() >= self.p_duplicate:
            return None
        start = 0 if self.rng.random() < 0.5 else self.rng.randrange(len(batch))
        self.injected["duplicate-delivery"] += 1
        return batch[start:]

    def race(self) -> bool:
        if self.rng.random() < self.p_race:
            self.injected["racing-closers"] += 1
            return True
        return False

    @contextmanager
    def quick_backoff(self, factor: float = 0.01) -> Iterator[None]:
        """botocore still decides what to retry; only its sleeps shrink, so a run with
        hundreds of injected throttles takes seconds, not minutes."""
        original = ExponentialBackoff.delay_amount

        def shortened(backoff: ExponentialBackoff, context: Any) -> float:
            return original(backoff, context) * factor

        ExponentialBackoff.delay_amount = shortened  # type: ignore[method-assign]
        try:
            yield
        finally:
            ExponentialBackoff.delay_amount = original  # type: ignore[method-assign]

    def report(self) -> dict[str, int]:
        return dict(sorted(self.injected.items()))

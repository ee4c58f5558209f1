"""AWS requests counted at the boto3 level, through `tidegate.aws.CLIENT_HOOKS`.

Every client the handlers make gets a `before-parameter-build` listener, so a request is
counted once however botocore retries it, with the caller's own parameters in hand (item
sizes for write units). Requests are attributed to the phase the bench is in (ingest,
closer, or none: setup and read-back are not the pipeline's cost).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tidegate.aws

DYNAMODB_WRITES = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)


def _value_size(value: dict[str, Any]) -> int:
    """Approximate DynamoDB size of one attribute value (the published sizing rules:
    strings by UTF-8 length, numbers about one byte per two digits, 3 bytes a container)."""
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        return len(inner.lstrip("-").replace(".", "")) // 2 + 2
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in inner)
    return len(json.dumps(inner))


def item_size(item: dict[str, Any]) -> int:
    return sum(len(k.encode("utf-8")) + _value_size(v) for k, v in item.items())


class RequestCounter:
    def __init__(self) -> None:
        self.phase: str | None = None
        self.requests: Counter[tuple[str, str, str]] = Counter()  # (phase, service, op)
        # DynamoDB write units: a 1 KB step per item written (2 per KB in a transaction).
        self.write_units: Counter[str] = Counter()
        # Strongly consistent read units, by the keys asked for (4 KB steps; our items are
        # small, and a key that is not found still costs a unit).
        self.read_units: Counter[str] = Counter()
        # Items written whole (PutItem, transaction Puts): how many and their bytes, the
        # sizes a capacity model scales write units from.
        self.items_put: Counter[str] = Counter()
        self.bytes_put: Counter[str] = Counter()

    # -- wiring --------------------------------------------------------------------------
    def hook(self, service: str, client: Any) -> None:
        client.meta.events.register(
            f"before-parameter-build.{service}", self._before
        )

    @contextmanager
    def installed(self) -> Iterator[RequestCounter]:
        tidegate.aws.CLIENT_HOOKS.append(self.hook)
        tidegate.aws.reset_clients()
        try:
            yield self
        finally:
            tidegate.aws.CLIENT_HOOKS.remove(self.hook)
            tidegate.aws.reset_clients()

    @contextmanager
    def phase_of(self, phase: str) -> Iterator[None]:
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = previous

    # -- counting ------------------------------------------------------------------------
    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.phase is None:
            return
        service = model.service_model.service_name
        self.requests[(self.phase, service, model.name)] += 1
        if service != "dynamodb":
            return
        if model.name == "PutItem":
            size = item_size(params["Item"])
            self.items_put[self.phase] += 1
            self.bytes_put[self.phase] += size
            self.write_units[self.phase] += max(1, math.ceil(size / 1024))
        elif model.name in ("UpdateItem", "DeleteItem"):
            # Charged by the larger of the item before and after: small here, 1 unit.
            self.write_units[self.phase] += 1
        elif model.name == "TransactWriteItems":
            for op in params.get("TransactItems", []):
                put = op.get("Put")
                size = item_size(put["Item"]) if put else 0
                if put:
                    self.items_put[self.phase] += 1
                    self.bytes_put[self.phase] += size
                self.write_units[self.phase] += 2 * max(1, math.ceil(size / 1024))
        elif model.name == "BatchGetItem":
            self.read_units[self.phase] += sum(
                len(t.get("Keys", [])) for t in params.get("RequestItems", {}).values()
            )
        elif model.name in ("GetItem", "Query", "Scan"):
            self.read_units[self.phase] += 1

    # -- reading -------------------------------------------------------------------------
    def count(self, phase: str, service: str | None = None,
              operations: frozenset[str] | None = None) -> int:
        return sum(
            n for (p, s, op), n in self.requests.items()
            if p == phase and (service is None or s == service)
            and (operations is None or op in operations)
        )

    def by_operation(self, phase: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for (p, s, op), n in sorted(self.requests.items()):
            if p == phase:
                out[f"{s}.{op}"] = n
        return out

    def clear(self) -> None:
        self.requests.clear()
        self.write_units.clear()
        self.read_units.clear()
        self.items_put.clear()
        self.bytes_put.clear()

"""Sink contract: publish a batch of results, report which ones did not make it."""

from __future__ import annotations

from typing import Any, Protocol

from tidegate.results import WindowResult


class Sink(Protocol):
    max_batch: int

    def publish(self, results: list[WindowResult]) -> list[int]:
        """Publish; return the indexes of results that failed (empty when all succeeded)."""
        ...


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]

"""Outcome observers: tools that run the handlers in-process (the local runner, the bench)
register here to see each invocation's outcome, so the handlers keep no state for them.

Empty in Lambda: a report is then one loop over nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (function, outcome): "ingest" with a BatchOutcome, "closer" with a CloseOutcome.
Observer = Callable[[str, Any], None]
OBSERVERS: list[Observer] = []


def report(function: str, outcome: Any) -> None:
    for observer in tuple(OBSERVERS):
        observer(function, outcome)

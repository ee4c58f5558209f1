"""The runtime's domain errors.

A store backend turns its own failures into these (DynamoDB's ConditionalCheckFailed and
TransactionCanceled become `ConditionFailedError` and `TransactionConflictError`), so the ingest and
the closer decide on what happened in the domain, never on a backend's error code.

The errors that replaced a `RuntimeError` still derive from it: code and operators that
caught `RuntimeError` keep working, and the messages are the ones they had.
"""

from __future__ import annotations

from typing import Any


class TidegateError(Exception):
    """Base of every error the runtime raises on purpose."""


class ConfigurationError(TidegateError, RuntimeError):
    """The deployment is not set up as the runtime needs it (environment, pipeline file)."""


class ConflictError(TidegateError, RuntimeError):
    """Another writer got to the state first."""


class ConditionFailedError(ConflictError):
    """A conditional write did not apply: the item is not as the writer expected.

    `current` is the item as it stands (None: there is no item, or the backend did not
    return it), so the caller can see who won without reading it again.
    """

    def __init__(self, message: str, current: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.current = current


class TransactionConflictError(ConflictError):
    """A multi-item write was cancelled because one of its conditions did not hold; none of
    it applied. The caller re-reads and decides again."""


class TooManyConflictsError(ConflictError):
    """A write kept losing to other writers; the records involved are retried by Lambda."""


class StateVanishedError(ConflictError):
    """An item the closer had just read was gone when it wrote to it."""


class VersionSwitchError(ConflictError):
    """The active version cannot be switched as asked (it would go backwards, or someone
    else switched it first)."""


class OutputRefusedError(TidegateError, RuntimeError):
    """A queue output (the late output) refused records that must be on it before the
    state write that marks them handled."""

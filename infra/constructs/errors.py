"""The one error type the constructs raise for a configuration they refuse."""

from __future__ import annotations


class TidegateConfigError(ValueError):
    """A construct configuration that would break the pipeline's guarantees; fails synth."""

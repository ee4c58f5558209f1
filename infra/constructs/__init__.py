"""Reusable CDK constructs: `TidegatePipeline` is the one users import into their own apps."""

from __future__ import annotations

from infra.constructs.kafka import KafkaSourceSettings
from infra.constructs.pipeline import (
    CloserSettings,
    IngestSettings,
    TidegateConfigError,
    TidegatePipeline,
)

__all__ = [
    "CloserSettings",
    "IngestSettings",
    "KafkaSourceSettings",
    "TidegateConfigError",
    "TidegatePipeline",
]

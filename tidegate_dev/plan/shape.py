"""A pipeline file's shape as the capacity model sees it: window, source, sink, index shards,
and the sizes of its state items.

Item sizes start from what the bench measured for its pipeline (the clickstream aggregates)
and are re-sized for this pipeline: its accumulator (built by the runtime's own aggregate
functions, filled with a representative value and sized by DynamoDB's rules) and its name,
which every state key carries twice (the item's key and its open-index key).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.aggregates.registry import build_aggregates
from tidegate.spec import Pipeline
from tidegate.state import keys
from tidegate_dev.bench.requests import item_size
from tidegate_dev.plan.calibration import Calibration
from tidegate_dev.plan.model import Shape

KINESIS_SHARD_ID = "shardId-000000000000"
_REPRESENTATIVE = 1234.56  # a sum or extreme of a few 2-decimal values


def _serialized(value: Any) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer().serialize(value)


def accumulator_bytes(pipeline: Pipeline) -> float:
    """DynamoDB size of one pane's accumulator for this pipeline's aggregates."""
    acc = AccumulatorSet(build_aggregates(pipeline))
    state = acc.create()
    values = {spec.field: _REPRESENTATIVE for spec in pipeline.aggregates.values() if spec.field}
    for _ in range(3):
        acc.add_event(state, values)
    return float(item_size({"acc": _serialized(_decimals(state))}))


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


def partition_id(pipeline: Pipeline) -> str:
    if pipeline.source.type == "msk":
        return f"{pipeline.source.topic_name}-0"
    return KINESIS_SHARD_ID


def mark_bytes(pipeline: Pipeline) -> float:
    """What one more source partition's high-water mark adds to an item."""
    mark = {partition_id(pipeline): {"S": keys.position_mark(0)}}
    return float(item_size({"hw": {"M": mark}}) - item_size({"hw": {"M": {}}}))


def max_index_shards() -> int:
    """The pipeline file's upper bound on `index_shards`."""
    for rule in Pipeline.model_fields["index_shards"].metadata:
        if hasattr(rule, "le"):
            return int(rule.le)
    raise RuntimeError("Pipeline.index_shards has no upper bound")


def shape_of(pipeline: Pipeline, calibration: Calibration) -> Shape:
    kind = pipeline.window.type
    measured = calibration.windows[kind]
    reference = calibration.reference_acc_bytes
    acc = accumulator_bytes(pipeline)
    name_delta = 2 * (len(pipeline.name) - len(f"bench-{kind}"))
    window = pipeline.window
    if window.type == "tumbling":
        size_ms = slide_ms = pane_ms = window.size
    elif window.type == "sliding":
        size_ms, slide_ms = window.size, window.slide
        pane_ms = math.gcd(size_ms, slide_ms)
    else:
        size_ms = slide_ms = pane_ms = window.gap
    return Shape(
        name=pipeline.name,
        window=kind,
        size_s=size_ms / 1_000,
        slide_s=slide_ms / 1_000,
        pane_s=pane_ms / 1_000,
        source=pipeline.source.type,
        sink=pipeline.sink.type,
        index_shards=pipeline.index_shards,
        max_index_shards=max_index_shards(),
        pane_bytes=max(1.0, measured.pane_item_bytes + acc - reference + name_delta),
        mark_bytes=mark_bytes(pipeline),
        result_bytes=max(1.0, measured.result_item_bytes + (acc - reference) + name_delta),
        acc_bytes=acc,
    )

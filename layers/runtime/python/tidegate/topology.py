"""The deployed resources' shape and the environment contract between infra and handlers.

One place for both the CDK construct and the local runner, so local mode's tables, indexes
and queues are the deployed ones by construction.
"""

from __future__ import annotations

from typing import Any

# State table
PK = "PK"
SK = "SK"
OPEN_INDEX = "open-windows"
OPEN_PK = "open_pk"
OPEN_SK = "open_sk"  # close_at of the pane's next window to close (Number)
OPEN_INDEX_PROJECTED = ("next_ws", "first_ws")
TTL_ATTRIBUTE = "expire_at"

# Environment variables read by the handlers
# The pipeline spec as JSON, or `file:NAME`: the spec in a file of the function's code
# (deployed functions: Lambda's environment holds 4 KB in all, a spec with its schemas more).
ENV_PIPELINE = "TIDEGATE_PIPELINE"
PIPELINE_FILE_PREFIX = "file:"
PIPELINE_FILE = "tidegate-pipeline.json"  # the deployed functions' spec file
ENV_TABLE = "TIDEGATE_TABLE"
ENV_DLQ_URL = "TIDEGATE_DLQ_URL"
ENV_LATE_URL = "TIDEGATE_LATE_URL"
ENV_SOURCE_STREAM = "TIDEGATE_SOURCE_STREAM"  # name or ARN, to list partitions
# Kafka partitions the watermark waits for, as `topic-0,topic-1` (Kafka has no ListShards
# through the AWS API); unset, the watermark spans the partitions seen so far.
ENV_SOURCE_PARTITIONS = "TIDEGATE_SOURCE_PARTITIONS"
# Glue Schema Registry that `format: avro` records' schema versions must belong to, and the
# schema's name there (default: the pipeline schema's name).
ENV_SCHEMA_REGISTRY = "TIDEGATE_SCHEMA_REGISTRY"
ENV_SCHEMA_NAME = "TIDEGATE_SCHEMA_NAME"
ENV_SINK_TARGET = "TIDEGATE_SINK_TARGET"  # stream name / queue URL / topic ARN / bus name
ENV_RETENTION = "TIDEGATE_STATE_RETENTION_S"  # how long closed state is kept (TTL)
# The state version this function reads and writes, overriding the pipeline file's
# `state_version`: a replay's functions run with the new version (tidegate/versions.py).
ENV_STATE_VERSION = "TIDEGATE_STATE_VERSION"
ENV_CLOCK = "TIDEGATE_CLOCK_MS"  # tests only: a fixed processing time
# Closer fan-out (tidegate/fanout.py): local worker threads (unset: deployed, the function
# invokes itself; locally, no fan-out), and the due panes above which a run fans out.
ENV_CLOSER_WORKERS = "TIDEGATE_CLOSER_WORKERS"
ENV_FANOUT_THRESHOLD = "TIDEGATE_FANOUT_THRESHOLD"
# Conditional writes in flight at once within an ingest batch (its groups) and a closer
# batch (its windows of different keys); default 8 in Lambda, 1 locally.
ENV_WRITE_CONCURRENCY = "TIDEGATE_WRITE_CONCURRENCY"

HANDLER_ENV = (
    ENV_PIPELINE,
    ENV_TABLE,
    ENV_DLQ_URL,
    ENV_LATE_URL,
    ENV_SOURCE_STREAM,
    ENV_SINK_TARGET,
)

DEFAULT_RETENTION_S = 7 * 24 * 3600
DEFAULT_SCHEMA_REGISTRY = "tidegate"


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments; the CDK construct builds the same keys and index."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": PK, "AttributeType": "S"},
            {"AttributeName": SK, "AttributeType": "S"},
            {"AttributeName": OPEN_PK, "AttributeType": "S"},
            {"AttributeName": OPEN_SK, "AttributeType": "N"},
        ],
        "KeySchema": [
            {"AttributeName": PK, "KeyType": "HASH"},
            {"AttributeName": SK, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": OPEN_INDEX,
                "KeySchema": [
                    {"AttributeName": OPEN_PK, "KeyType": "HASH"},
                    {"AttributeName": OPEN_SK, "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": list(OPEN_INDEX_PROJECTED),
                },
            }
        ],
    }

"""The deployment settings read from the CDK context (cdk.json or `-c key=value`).

`CONTEXT_KEYS` is the one list of keys the app reads: docs/deploy.md has a row for each
(tests/infra/test_cdk_context.py holds the two together). Every value is checked before a
construct is built, so a bad one fails synth with a message naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_cdk import RemovalPolicy

from infra.constructs.errors import TidegateConfigError
from infra.constructs.kafka import CONTEXT_KEYS as KAFKA_CONTEXT_KEYS

# Stages held to the production rules: alarms must reach someone, nothing is destroyed
# with the stack, and the open-window index is sized for the expected keys.
PRODUCTION_STAGES = ("prod", "production")
STAGE_PATTERN = re.compile(r"^[a-z0-9-]{0,20}$")
ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:(?P<service>[a-z0-9-]+):[a-z0-9-]*:\d{12}:.+$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Kinesis keeps records 24 h to 8,760 h (365 days); the default week gives failed-batch
# pointers, DLQ redrive and replays a week of the log to read back.
DEFAULT_STREAM_RETENTION_H = 168
MAX_STREAM_RETENTION_H = 8760
# A Kinesis mapping's MaximumRecordAgeInSeconds allows 60 s to 7 days.
DEFAULT_MAX_RECORD_AGE_H = 24
# On-demand ceilings on the state table: a runaway producer or replay is throttled (and
# alarmed on) instead of billed without bound. Ten partitions' worth; `tidegate plan`
# gives a pipeline's need for its rate and keys.
DEFAULT_TABLE_MAX_WRITE_UNITS = 10_000
DEFAULT_TABLE_MAX_READ_UNITS = 30_000

CONTEXT_KEYS: dict[str, str] = {
    "pipelines": "pipeline files, a list or comma-separated",
    "stage": "suffix of stack and physical names; `prod`/`production` apply the production rules",
    "account": "target account (default: CDK_DEFAULT_ACCOUNT, else a placeholder)",
    "region": "target region (default: CDK_DEFAULT_REGION, else us-east-1)",
    "removal_policy": "retain (default) or destroy; destroy is refused for production stages",
    "deletion_protection": "state table deletion protection (default: on unless destroy)",
    "alarm_topic_arn": "SNS topic every alarm notifies; production stages need it or alarm_email",
    "alarm_email": "creates the alarm topic with this e-mail subscription",
    "kms_key_arn": "customer KMS key for table, queues, streams, topics and log groups",
    "kms": "aws (default: AWS-managed keys) or customer (creates a key with rotation)",
    "stream_retention_hours": "source stream retention, 24..8760 (default 168)",
    "max_record_age_hours": "the ingest mapping's maximum record age, 1..168 (default 24)",
    "table_max_read_units": "state table on-demand maximum read units/s (default 30000)",
    "table_max_write_units": "state table on-demand maximum write units/s (default 10000)",
    "closer_reserved_concurrency": "closer reserved concurrency (default: from index_shards)",
    "replay_reserved_concurrency": "reserved concurrency of each replay function",
    "parallelization_factor": "Kinesis mapping parallelization factor, 1..10 (default 1)",
    "partitioned_by_key": "true when producers use the aggregation key as partition key",
    "replayVersion": "adds a replay building this state version",
    "replayFrom": "TRIM_HORIZON (default) or AT_TIMESTAMP",
    "replayTimestamp": "AT_TIMESTAMP start: epoch seconds or ISO-8601",
    **{key: f"Kafka source of msk pipelines: KafkaSourceSettings.{name}"
       for name, key in KAFKA_CONTEXT_KEYS.items()},
}


@dataclass(frozen=True)
class DeploySettings:
    stage: str = ""
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    deletion_protection: bool = True
    alarm_topic_arn: str | None = None
    alarm_email: str | None = None
    kms_key_arn: str | None = None
    customer_key: bool = False  # `kms: customer`: the stack creates the key
    stream_retention_hours: int = DEFAULT_STREAM_RETENTION_H
    max_record_age_hours: int = DEFAULT_MAX_RECORD_AGE_H
    table_max_read_units: int = DEFAULT_TABLE_MAX_READ_UNITS
    table_max_write_units: int = DEFAULT_TABLE_MAX_WRITE_UNITS
    closer_reserved_concurrency: int | None = None
    replay_reserved_concurrency: int | None = None

    @property
    def production(self) -> bool:
        return self.stage in PRODUCTION_STAGES

    @property
    def name_suffix(self) -> str:
        return f"-{self.stage}" if self.stage else ""


def _flag(key: str, value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise TidegateConfigError(f"context {key}: true or false, not {value!r}")


def _int(key: str, value: Any, low: int, high: int | None = None) -> int | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise TidegateConfigError(f"context {key}: a whole number {bounds}, not {value!r}")
    return int(text)


def read_settings(get: Callable[[str], Any]) -> DeploySettings:
    """The deployment settings, every value checked; raises TidegateConfigError naming the
    key (and, for the production rules, what to give instead)."""
    stage = str(get("stage") or "")
    if not STAGE_PATTERN.match(stage):
        raise TidegateConfigError(
            f"context stage: lower-case letters, digits and '-', at most 20, not {stage!r}"
        )
    production = stage in PRODUCTION_STAGES
    problems: list[str] = []

    policy = str(get("removal_policy") or "retain").lower()
    if policy not in ("retain", "destroy"):
        raise TidegateConfigError(f"context removal_policy: 'retain' or 'destroy', not {policy!r}")
    if production and policy == "destroy":
        problems.append(
            f"removal_policy=destroy is refused for stage={stage}: `cdk destroy` would delete "
            "the state table and the dead-letter, late and failed-batch queues (the only copy "
            "of records that could not be aggregated). Keep the default (retain)."
        )

    topic_arn = str(get("alarm_topic_arn") or "") or None
    email = str(get("alarm_email") or "") or None
    if topic_arn and email:
        raise TidegateConfigError(
            "context alarm_topic_arn and alarm_email are exclusive: give the topic, or an "
            "e-mail address for a topic the stack creates"
        )
    if topic_arn:
        match = ARN_PATTERN.match(topic_arn)
        if match is None or match["service"] != "sns":
            raise TidegateConfigError(
                f"context alarm_topic_arn: an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME), "
                f"not {topic_arn!r}"
            )
    if email and not EMAIL_PATTERN.match(email):
        raise TidegateConfigError(f"context alarm_email: an e-mail address, not {email!r}")
    if production and not (topic_arn or email):
        problems.append(
            f"stage={stage} needs somewhere for alarms to go: "
            "-c alarm_topic_arn=arn:aws:sns:REGION:ACCOUNT:TOPIC or -c alarm_email=ADDRESS"
        )

    key_arn = str(get("kms_key_arn") or "") or None
    kms = str(get("kms") or "aws").lower()
    if kms not in ("aws", "customer"):
        raise TidegateConfigError(f"context kms: 'aws' or 'customer', not {kms!r}")
    if key_arn:
        match = ARN_PATTERN.match(key_arn)
        if match is None or match["service"] != "kms" or ":key/" not in key_arn:
            raise TidegateConfigError(
                f"context kms_key_arn: a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), "
                f"not {key_arn!r}"
            )
        if kms == "customer":
            raise TidegateConfigError(
                "context kms=customer creates a key and kms_key_arn names one: give one of them"
            )
    if problems:
        raise TidegateConfigError("; ".join(problems))

    return DeploySettings(
        stage=stage,
        removal_policy=RemovalPolicy(policy.upper()),
        # A table that `cdk destroy` is asked to delete must be deletable.
        deletion_protection=_flag(
            "deletion_protection", get("deletion_protection"), policy == "retain"
        ),
        alarm_topic_arn=topic_arn,
        alarm_email=email,
        kms_key_arn=key_arn,
        customer_key=kms == "customer",
        stream_retention_hours=_int(
            "stream_retention_hours", get("stream_retention_hours"), 24, MAX_STREAM_RETENTION_H
        ) or DEFAULT_STREAM_RETENTION_H,
        max_record_age_hours=_int(
            "max_record_age_hours", get("max_record_age_hours"), 1, 168
        ) or DEFAULT_MAX_RECORD_AGE_H,
        table_max_read_units=_int(
            "table_max_read_units", get("table_max_read_units"), 1
        ) or DEFAULT_TABLE_MAX_READ_UNITS,
        table_max_write_units=_int(
            "table_max_write_units", get("table_max_write_units"), 1
        ) or DEFAULT_TABLE_MAX_WRITE_UNITS,
        closer_reserved_concurrency=_int(
            "closer_reserved_concurrency", get("closer_reserved_concurrency"), 1
        ),
        replay_reserved_concurrency=_int(
            "replay_reserved_concurrency", get("replay_reserved_concurrency"), 1
        ),
    )

"""Where a pipeline's resources are, for the ops commands (local names, flags or a stack)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tidegate.aws import client, error_code, reset_clients
from tidegate.spec import Pipeline
from tidegate_dev.local.naming import resource_names


@contextmanager
def aws_endpoint(endpoint_url: str | None, region: str | None = None) -> Iterator[None]:
    """An endpoint (moto, LocalStack) when given, else boto3's own chain: unlike the local
    runner, an ops command never starts a server of its own."""
    saved = os.environ.get("AWS_DEFAULT_REGION")
    try:
        if region:
            os.environ["AWS_DEFAULT_REGION"] = region
            reset_clients()
        if endpoint_url:
            from tidegate_dev.local.server import endpoint

            with endpoint(endpoint_url):
                yield
        else:
            yield
    finally:
        if region:
            if saved is None:
                os.environ.pop("AWS_DEFAULT_REGION", None)
            else:
                os.environ["AWS_DEFAULT_REGION"] = saved
            reset_clients()


@dataclass
class Targets:
    pipeline: Pipeline
    source_stream: str
    table: str
    dlq_url: str | None
    late_url: str | None
    sink_kind: str  # "kinesis": sink is a stream name; "sqs": sink is a queue URL
    sink: str | None
    ingest_function: str | None = None


def stack_outputs(stack: str) -> dict[str, str]:
    described = client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def queue_url(name_or_url: str | None) -> str | None:
    """A queue URL from a name or URL; None when there is no such queue."""
    if not name_or_url:
        return None
    if name_or_url.startswith(("http://", "https://")):
        return name_or_url
    try:
        return client("sqs").get_queue_url(QueueName=name_or_url)["QueueUrl"]
    except Exception as exc:  # the queue is not there: reported as missing, not a crash
        if error_code(exc) is None:
            raise
        return None


def resolve(
    pipeline: Pipeline,
    *,
    stack: str | None = None,
    table: str | None = None,
    stream: str | None = None,
    dlq_url: str | None = None,
    late_url: str | None = None,
    sink: str | None = None,
    ingest_function: str | None = None,
    resolve_queues: bool = True,
) -> Targets:
    """Flags win; then the stack's outputs; then the names `tidegate local run` gives."""
    names = resource_names(pipeline)
    outputs: dict[str, Any] = stack_outputs(stack) if stack else {}
    sink_kind = "kinesis" if pipeline.sink.type == "kinesis" else "sqs"
    default_sink = names.sink if sink_kind == "kinesis" or pipeline.sink.type == "sqs" \
        else names.sink_reader
    if outputs and pipeline.sink.type in ("kinesis", "sqs"):
        default_sink = outputs.get("SinkTarget", default_sink)
    sink_target = sink or default_sink
    dlq = dlq_url or outputs.get("DeadLetterQueueUrl") or names.dlq
    late = late_url or outputs.get("LateQueueUrl") or names.late
    return Targets(
        pipeline=pipeline,
        source_stream=(stream or outputs.get("SourceStreamName") or outputs.get("SourceTopic")
                       or names.source_stream),
        table=table or outputs.get("StateTableName") or names.table,
        dlq_url=queue_url(dlq) if resolve_queues else dlq,
        late_url=queue_url(late) if resolve_queues else late,
        sink_kind=sink_kind,
        sink=(queue_url(sink_target) if sink_kind == "sqs" and resolve_queues
              else sink_target),
        ingest_function=ingest_function or outputs.get("IngestFunctionName"),
    )


def add_location_args(parser: Any, *, with_queues: bool = True) -> None:
    """Flags every ops command shares to find the pipeline's resources."""
    parser.add_argument("pipeline", help="pipeline file (YAML)")
    parser.add_argument("--endpoint-url", help="an AWS-compatible endpoint (moto, LocalStack)")
    parser.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    parser.add_argument(
        "--stack", help="a deployed stack: read resource names from its CloudFormation outputs"
    )
    parser.add_argument("--stream", help="source stream name (default: as `local run` names it)")
    parser.add_argument("--table", help="state table name")
    parser.add_argument("--sink", help="sink stream name, or queue name/URL to read results from")
    if with_queues:
        parser.add_argument("--dlq-url", help="dead-letter queue URL or name")
        parser.add_argument("--late-url", help="late-output queue URL or name")

"""The ingest's Kafka event source: a topic on an Amazon MSK cluster or on self-managed brokers.

A pipeline file names only the topic (`source: {type: msk, topic: ...}`); where the brokers
are and how to reach them is deployment configuration: `KafkaSourceSettings`, which the
tidegate app fills from CDK context (`CONTEXT_KEYS`).

Lambda offers retries, bisect on error, a maximum record age and partial batch responses
for Kafka only in provisioned mode, and the pipeline needs all four (a poison record must
not stall its partition; partial failures name the lowest failed offset per partition), so
every mapping here runs in provisioned mode, with `min_pollers`..`max_pollers` pollers.

Ordering: Lambda reads each topic-partition in order, one batch at a time, so the per-item
high-water marks (by offset, per partition) hold whatever the record keys are. Keying by
the aggregation key still matters: each aggregate item is then written from one partition
only (one mark per item, no two invocations contending for it), and a key's events share a
partition's watermark instead of waiting for the slowest partition.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, Fn, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs

from infra.constructs.errors import TidegateConfigError
from tidegate.spec import MskSource, Pipeline

# Authentication per kind of cluster. MSK without a secret authenticates with the function's
# IAM role; self-managed brokers know no IAM.
MSK_AUTH = ("iam", "sasl_scram_512", "mtls")
SELF_MANAGED_AUTH = ("sasl_scram_512", "sasl_scram_256", "basic", "mtls", "none")
_ACCESS_TYPE = {
    "sasl_scram_512": lambda_.SourceAccessConfigurationType.SASL_SCRAM_512_AUTH,
    "sasl_scram_256": lambda_.SourceAccessConfigurationType.SASL_SCRAM_256_AUTH,
    "basic": lambda_.SourceAccessConfigurationType.BASIC_AUTH,
    "mtls": lambda_.SourceAccessConfigurationType.CLIENT_CERTIFICATE_TLS_AUTH,
}
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")

# What Lambda's pollers call with the function's role (MSK's data-plane actions when the
# cluster uses IAM access control; the cluster's brokers and network otherwise).
MSK_CLUSTER_ACTIONS = ("kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers")
MSK_IAM_CLUSTER_ACTIONS = (
    "kafka-cluster:Connect",
    "kafka-cluster:DescribeClusterDynamicConfiguration",
)
MSK_IAM_TOPIC_ACTIONS = ("kafka-cluster:DescribeTopic", "kafka-cluster:ReadData")
MSK_IAM_GROUP_ACTIONS = ("kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup")
# The pollers' network interfaces in the cluster's VPC. EC2's Describe* calls have no
# resource-level permissions, and the ENIs do not exist before the mapping creates them.
ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
)

_CLUSTER_ARN = re.compile(r"^arn:aws[a-z-]*:kafka:[a-z0-9-]+:\d{12}:cluster/[^/]+/[^/]+$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$")
_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/.+$")
_BROKER = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")
_SUBNET = re.compile(r"^subnet-[0-9a-z]+$")
_SECURITY_GROUP = re.compile(r"^sg-[0-9a-zA-Z]+$")
_CONSUMER_GROUP = re.compile(r"^[a-zA-Z0-9\-/*:_+=.@]{1,200}$")


@dataclass(frozen=True)
class KafkaSourceSettings:
    """Where an `msk` pipeline's topic lives: give `cluster_arn` (Amazon MSK) or
    `bootstrap_servers` (self-managed), never both.

    auth: MSK `iam` (default without a secret), `sasl_scram_512` or `mtls`; self-managed
    `sasl_scram_512`, `sasl_scram_256`, `basic` (SASL/PLAIN), `mtls`, or `none` (only inside
    your VPC). Every mode but `iam`/`none` needs `secret_arn`; with a secret and no `auth`,
    `sasl_scram_512`.
    """

    cluster_arn: str | None = None
    bootstrap_servers: tuple[str, ...] = ()
    auth: str | None = None
    secret_arn: str | None = None
    # The customer managed KMS key of the secret (MSK's SCRAM secrets must use one).
    secret_key_arn: str | None = None
    # Self-managed brokers whose certificates a private CA signed.
    root_ca_secret_arn: str | None = None
    # Self-managed brokers inside a VPC: where Lambda's pollers put their network interfaces.
    # MSK mappings always use the cluster's own subnets and security groups.
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    # Default `tidegate-<pipeline>[-<stage>]`; fixed at creation (Lambda cannot change it).
    consumer_group_id: str | None = None
    # The log is the source of truth: a new mapping starts at the oldest retained record.
    starting_position: str = "TRIM_HORIZON"
    min_pollers: int = 1
    max_pollers: int = 10
    poller_group_name: str | None = None

    @property
    def managed(self) -> bool:
        return self.cluster_arn is not None

    @property
    def in_vpc(self) -> bool:
        """MSK clusters live in a VPC; self-managed brokers when subnets are given."""
        return self.managed or bool(self.subnet_ids)

    @property
    def resolved_auth(self) -> str:
        if self.auth:
            return self.auth
        if self.secret_arn:
            return "sasl_scram_512"  # the one SCRAM mechanism MSK supports
        return "iam" if self.managed else "none"


# The tidegate app's context key for each setting (`npx cdk synth -c msk_cluster_arn=...`).
CONTEXT_KEYS = {
    "cluster_arn": "msk_cluster_arn",
    "bootstrap_servers": "kafka_bootstrap_servers",
    "auth": "kafka_auth",
    "secret_arn": "kafka_secret_arn",
    "secret_key_arn": "kafka_secret_key_arn",
    "root_ca_secret_arn": "kafka_root_ca_secret_arn",
    "subnet_ids": "kafka_subnet_ids",
    "security_group_ids": "kafka_security_group_ids",
    "consumer_group_id": "kafka_consumer_group_id",
    "starting_position": "kafka_starting_position",
    "min_pollers": "kafka_min_pollers",
    "max_pollers": "kafka_max_pollers",
    "poller_group_name": "kafka_poller_group",
}
_LISTS = {"bootstrap_servers", "subnet_ids", "security_group_ids"}
_INTS = {"min_pollers", "max_pollers"}


def settings_from_context(get: Callable[[str], Any]) -> KafkaSourceSettings | None:
    """KafkaSourceSettings from CDK context (`get(key)`); None when no Kafka key is set.
    Lists are comma-separated strings or JSON lists (cdk.json)."""
    values: dict[str, Any] = {}
    for name, key in CONTEXT_KEYS.items():
        raw = get(key)
        if raw is None or raw == "" or raw == []:
            continue
        if name in _LISTS:
            items = raw.split(",") if isinstance(raw, str) else [str(v) for v in raw]
            values[name] = tuple(item.strip() for item in items if item.strip())
        elif name in _INTS:
            try:
                values[name] = int(raw)
            except (TypeError, ValueError):
                raise TidegateConfigError(
                    f"context {key}: a whole number, not {raw!r}"
                ) from None
        else:
            values[name] = str(raw)
    return KafkaSourceSettings(**values) if values else None


def _name(field: str) -> str:
    """How a user sets `field`: the context key and the construct prop."""
    return f"{CONTEXT_KEYS[field]} (KafkaSourceSettings.{field})"


def validate(pipeline: Pipeline, settings: KafkaSourceSettings | None) -> KafkaSourceSettings:
    """The settings, or a TidegateConfigError that names the setting to change."""
    where = f"pipeline {pipeline.name!r}"
    if settings is None or (settings.cluster_arn is None and not settings.bootstrap_servers):
        raise TidegateConfigError(
            f"{where}: source.type msk reads topic {_topic(pipeline)!r} from a Kafka cluster "
            f"this pipeline file does not name. Set {_name('cluster_arn')} for Amazon MSK, "
            f"or {_name('bootstrap_servers')} for self-managed brokers, e.g. "
            "`npx cdk synth -c msk_cluster_arn=arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID`"
        )
    s = settings
    problems: list[str] = []
    if s.cluster_arn is not None and s.bootstrap_servers:
        problems.append(
            f"{_name('cluster_arn')} and {_name('bootstrap_servers')} are exclusive: "
            "one Kafka cluster per pipeline"
        )
    if s.cluster_arn is not None and _literal(s.cluster_arn) \
            and not _CLUSTER_ARN.match(s.cluster_arn):
        problems.append(
            f"{_name('cluster_arn')} {s.cluster_arn!r} is not an MSK cluster ARN "
            "(arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID)"
        )
    bad = [b for b in s.bootstrap_servers if _literal(b) and not _BROKER.match(b)]
    if bad:
        problems.append(f"{_name('bootstrap_servers')}: host:port expected, not {bad}")
    allowed = MSK_AUTH if s.managed else SELF_MANAGED_AUTH
    auth = s.resolved_auth
    if auth not in allowed:
        kind = "Amazon MSK" if s.managed else "self-managed Kafka"
        problems.append(f"{_name('auth')} {auth!r}: {kind} takes one of {', '.join(allowed)}")
    elif auth in _ACCESS_TYPE and not s.secret_arn:
        problems.append(f"{_name('auth')} {auth!r} needs {_name('secret_arn')}")
    elif auth not in _ACCESS_TYPE and s.secret_arn:
        problems.append(
            f"{_name('secret_arn')} is given but {_name('auth')} is {auth!r}, which uses no "
            "secret: set the authentication the secret is for"
        )
    for field, pattern in (("secret_arn", _SECRET_ARN), ("root_ca_secret_arn", _SECRET_ARN),
                           ("secret_key_arn", _KEY_ARN)):
        value = getattr(s, field)
        if value is not None and _literal(value) and not pattern.match(value):
            problems.append(f"{_name(field)} {value!r} is not an ARN of that kind")
    if s.managed:
        for field in ("subnet_ids", "security_group_ids", "root_ca_secret_arn"):
            if getattr(s, field):
                problems.append(
                    f"{_name(field)} is for self-managed brokers: an MSK mapping uses the "
                    "cluster's own subnets, security groups and certificates"
                )
    else:
        if bool(s.subnet_ids) != bool(s.security_group_ids):
            problems.append(
                f"brokers in a VPC need both {_name('subnet_ids')} and "
                f"{_name('security_group_ids')}"
            )
        if not s.subnet_ids and auth == "none":
            problems.append(
                "brokers reached over the internet need authentication: set "
                f"{_name('secret_arn')} (and {_name('auth')}), or reach them inside your VPC "
                f"with {_name('subnet_ids')} and {_name('security_group_ids')}"
            )
        bad = [x for x in s.subnet_ids if _literal(x) and not _SUBNET.match(x)]
        bad += [x for x in s.security_group_ids if _literal(x) and not _SECURITY_GROUP.match(x)]
        if bad:
            problems.append(f"subnet-... and sg-... ids expected, not {bad}")
    if s.starting_position not in STARTING_POSITIONS:
        problems.append(
            f"{_name('starting_position')}: one of {', '.join(STARTING_POSITIONS)}, "
            f"not {s.starting_position!r}"
        )
    if not (1 <= s.min_pollers <= 200 and 1 <= s.max_pollers <= 2000
            and s.min_pollers <= s.max_pollers):
        problems.append(
            f"{_name('min_pollers')} 1..200 and {_name('max_pollers')} 1..2000 with min <= max, "
            f"not {s.min_pollers}..{s.max_pollers}"
        )
    if s.consumer_group_id is not None and not _CONSUMER_GROUP.match(s.consumer_group_id):
        problems.append(
            f"{_name('consumer_group_id')} {s.consumer_group_id!r}: 1-200 characters of "
            "[a-zA-Z0-9-/*:_+=.@]"
        )
    if problems:
        raise TidegateConfigError(f"{where}: " + "; ".join(problems))
    return s


def _literal(value: str) -> bool:
    """Values from another construct (tokens) are checked by CloudFormation instead."""
    return not Token.is_unresolved(value)


def _topic(pipeline: Pipeline) -> str:
    assert isinstance(pipeline.source, MskSource)
    return pipeline.source.topic_name


def partition_names(pipeline: Pipeline) -> list[str]:
    """`<topic>-<n>` for the partitions the pipeline file declares (`source.shards`): the
    watermark then waits for every one of them, as it does for every open Kinesis shard."""
    assert isinstance(pipeline.source, MskSource)
    count = pipeline.source.shards or 0
    return [f"{_topic(pipeline)}-{n}" for n in range(count)]


def add_kafka_source(
    fn: lambda_.Function,
    *,
    pipeline: Pipeline,
    settings: KafkaSourceSettings,
    consumer_group_id: str,
    batch_size: int,
    max_batching_window_s: int,
    retry_attempts: int,
    max_record_age_s: int,
    failed_batches: sqs.IQueue,
) -> lambda_.EventSourceMapping:
    """Map the topic to `fn` with the pipeline's failure settings, and grant what Lambda's
    pollers need through the function's role, on the named resources only."""
    s = settings
    access: list[lambda_.SourceAccessConfiguration] = []
    auth = s.resolved_auth
    if auth in _ACCESS_TYPE:
        access.append(lambda_.SourceAccessConfiguration(
            type=_ACCESS_TYPE[auth], uri=s.secret_arn or ""
        ))
    if s.root_ca_secret_arn:
        access.append(lambda_.SourceAccessConfiguration(
            type=lambda_.SourceAccessConfigurationType.SERVER_ROOT_CA_CERTIFICATE,
            uri=s.root_ca_secret_arn,
        ))
    # Lambda's API takes prefixed ids here (`subnet:subnet-...`, `security_group:sg-...`).
    access += [lambda_.SourceAccessConfiguration(
        type=lambda_.SourceAccessConfigurationType.VPC_SUBNET, uri=f"subnet:{subnet}"
    ) for subnet in s.subnet_ids]
    access += [lambda_.SourceAccessConfiguration(
        type=lambda_.SourceAccessConfigurationType.VPC_SECURITY_GROUP,
        uri=f"security_group:{group}",
    ) for group in s.security_group_ids]

    # The generic mapping, not ManagedKafkaEventSource: that one attaches the AWS managed
    # AWSLambdaMSKExecutionRole policy (every MSK cluster, ENI and log group: Resource "*").
    # Every property below is on the L2, so no CfnEventSourceMapping override is needed.
    mapping = fn.add_event_source_mapping(
        "KafkaSource",
        event_source_arn=s.cluster_arn,
        kafka_bootstrap_servers=list(s.bootstrap_servers) or None,
        kafka_topic=_topic(pipeline),
        kafka_consumer_group_id=consumer_group_id,
        starting_position=lambda_.StartingPosition(s.starting_position),
        batch_size=batch_size,
        max_batching_window=Duration.seconds(max_batching_window_s),
        # The next four exist for Kafka in provisioned mode only, hence the poller config.
        report_batch_item_failures=True,
        bisect_batch_on_error=True,
        retry_attempts=retry_attempts,
        max_record_age=Duration.seconds(max_record_age_s),
        provisioned_poller_config=lambda_.ProvisionedPollerConfig(
            minimum_pollers=s.min_pollers,
            maximum_pollers=s.max_pollers,
            poller_group_name=s.poller_group_name,
        ),
        on_failure=sources.SqsDlq(failed_batches),  # grants the sends
        source_access_configurations=access or None,
    )
    _grant(fn, pipeline, s, consumer_group_id)
    return mapping


def _grant(
    fn: lambda_.Function, pipeline: Pipeline, s: KafkaSourceSettings, consumer_group_id: str
) -> None:
    def allow(actions: tuple[str, ...], resources: list[str], **extra: Any) -> None:
        fn.add_to_role_policy(iam.PolicyStatement(
            actions=list(actions), resources=resources, **extra
        ))

    if s.cluster_arn is not None:
        allow(MSK_CLUSTER_ACTIONS, [s.cluster_arn])
        if s.resolved_auth == "iam":
            allow(MSK_IAM_CLUSTER_ACTIONS, [s.cluster_arn])
            allow(MSK_IAM_TOPIC_ACTIONS, [_msk_arn(s.cluster_arn, "topic", _topic(pipeline))])
            allow(MSK_IAM_GROUP_ACTIONS, [_msk_arn(s.cluster_arn, "group", consumer_group_id)])
    secrets = [arn for arn in (s.secret_arn, s.root_ca_secret_arn) if arn]
    if secrets:
        allow(("secretsmanager:GetSecretValue",), secrets)
    if s.secret_key_arn:
        # Only to open the secret, through Secrets Manager.
        region = Stack.of(fn).region
        allow(("kms:Decrypt",), [s.secret_key_arn], conditions={
            "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
        })
    if s.in_vpc:
        allow(ENI_ACTIONS, ["*"])  # acknowledged with the role (pipeline._function)


def _msk_arn(cluster_arn: str, kind: str, name: str) -> str:
    """MSK names topics and groups under the cluster's name and UUID:
    arn:...:cluster/NAME/UUID -> arn:...:topic/NAME/UUID/<topic>."""
    if _literal(cluster_arn):
        return cluster_arn.replace(":cluster/", f":{kind}/", 1) + f"/{name}"
    head, tail = Fn.select(0, Fn.split(":cluster/", cluster_arn)), Fn.select(
        1, Fn.split(":cluster/", cluster_arn)
    )
    return Fn.join("", [head, f":{kind}/", tail, f"/{name}"])


__all__ = [
    "CONTEXT_KEYS",
    "KafkaSourceSettings",
    "add_kafka_source",
    "partition_names",
    "settings_from_context",
    "validate",
]

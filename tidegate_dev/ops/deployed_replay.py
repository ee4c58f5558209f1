"""The cut-over of a deployed replay, through boto3 (`tidegate replay --deployed`).

The stack was deployed with `-c replayVersion=N`: a replay ingest function reads the source
from its own mapping into state version N, beside the live ingest (infra/constructs/
replay.py). Once the replay has caught up, the cut-over:

1. stops the live mapping (its version gets no more records) and waits until the replay has
   read everything the live version read;
2. switches the active version, conditionally (versions.py): the live version publishes
   the windows closing up to the handover watermark, version N every one after;
3. stops the replay mapping, points the live ingest and closer functions at version N
   and starts the live mapping again. It resumes from its own checkpoint, which is at or
   behind the replay's position: records version N already holds are skipped by its
   per-item high-water marks, so nothing is counted twice;
4. gives the superseded version's state a TTL.

Pointing the live functions at version N is a stack update: the stack's deploy parameter
(its `LiveStateVersionParameter` output names it) sets their `TIDEGATE_STATE_VERSION`, so
the stack, not an edit behind CloudFormation's back, says which version is live, and
`cdk deploy` keeps it (previous parameter values are kept). A stack deployed before the
parameter existed has its functions' configuration edited instead (that drifts).

Each step is idempotent, so a cut-over that stopped half-way is finished by running it
again. Afterwards set `state_version: N` in the pipeline file and deploy without the replay
context.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidegate import topology
from tidegate.aws import client
from tidegate.state.dynamodb import DynamoStore
from tidegate.versions import ActiveVersions
from tidegate_dev.ops.cutover import PartitionProgress, caught_up, expire_version, progress

Log = Callable[[str], None]


class CutoverError(RuntimeError):
    """The cut-over cannot proceed; the message says what state it left things in."""


@dataclass
class DeployedReplay:
    pipeline: str
    table: str
    stream: str  # name or ARN of the source stream
    live_ingest: str
    live_closer: str
    replay_ingest: str
    replay_version: int
    live_version: int  # the pipeline file's, used if no version was recorded yet
    # The stack and its parameter holding the live state version (see the module doc).
    stack: str | None = None
    version_parameter: str | None = None
    retention_s: int = topology.DEFAULT_RETENTION_S
    poll_s: float = 5.0
    wait_s: float = 600.0
    log: Log = field(default=lambda message: None)

    def __post_init__(self) -> None:
        self.store = DynamoStore(self.table)
        self.versions = ActiveVersions(self.store, self.pipeline)

    # -- looking -----------------------------------------------------------------------------
    def partitions(self) -> list[str]:
        key = "StreamARN" if self.stream.startswith("arn:") else "StreamName"
        shards = client("kinesis").list_shards(**{key: self.stream})["Shards"]
        return [s["ShardId"] for s in shards]

    def progress(self) -> list[PartitionProgress]:
        live = self.versions.active() or self.live_version
        if live == self.replay_version:
            live = self._previous()
        return progress(self.store, self.pipeline, live, self.replay_version, self.partitions())

    def _previous(self) -> int:
        item = self.versions.read() or {}
        handover = item.get("handover") or {}
        before = [int(v) for v, h in handover.items() if "until" in h]
        return max(before) if before else self.live_version

    def mapping(self, function: str) -> dict[str, Any]:
        """The function's mapping on the source stream."""
        found = [
            m for m in client("lambda").list_event_source_mappings(
                FunctionName=function)["EventSourceMappings"]
            if ":kinesis:" in m["EventSourceArn"]
        ]
        if len(found) != 1:
            raise CutoverError(
                f"{function}: expected one Kinesis mapping, found {len(found)}"
            )
        return found[0]

    # -- acting ------------------------------------------------------------------------------
    def cut_over(self) -> int:
        """Returns the handover watermark. Refuses unless the replay has caught up."""
        live = self.versions.ensure(self.live_version, _now_ms())
        if live != self.replay_version:
            rows = self.progress()
            if not caught_up(rows):
                behind = ", ".join(r.partition for r in rows if not r.caught_up)
                raise CutoverError(
                    f"version {self.replay_version} has not caught up with version {live} on "
                    f"{behind}; nothing was changed"
                )
            self._set_enabled(self.live_ingest, False)
            try:
                self._wait_caught_up()
            except CutoverError:
                self._set_enabled(self.live_ingest, True)
                raise
            handover = self.versions.switch(self.replay_version, _now_ms(), expected=live)
            self.log(f"active version {live} -> {self.replay_version} at watermark {handover}")
        else:
            live = self._previous()
            self.log(f"version {self.replay_version} is already active: finishing the cut-over")
        handover = self.versions.ownership(self.replay_version).after
        self._set_enabled(self.replay_ingest, False)
        if self.stack and self.version_parameter:
            self._set_stack_parameter(self.replay_version)
        else:
            for function in (self.live_ingest, self.live_closer):
                self._set_state_version(function, self.replay_version)
        self._set_enabled(self.live_ingest, True)
        expired = expire_version(
            self.store, self.pipeline, live, _now_ms() // 1000 + self.retention_s
        )
        self.log(f"version {live}: {expired} items expire in {self.retention_s} s")
        return handover

    def _wait_caught_up(self) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            rows = self.progress()
            if caught_up(rows):
                return
            if time.monotonic() > deadline:
                raise CutoverError(
                    f"version {self.replay_version} did not catch up within {self.wait_s} s "
                    "of stopping the live mapping; the live mapping was started again"
                )
            time.sleep(self.poll_s)

    def _set_enabled(self, function: str, enabled: bool) -> None:
        lam = client("lambda")
        mapping = self.mapping(function)
        want = "Enabled" if enabled else "Disabled"
        if mapping["State"] != want:
            lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=enabled)
            self.log(f"{function}: mapping {want.lower()}")
        # Disabling lets an in-flight batch finish: wait for the mapping to say so.
        deadline = time.monotonic() + self.wait_s
        while lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] != want:
            if time.monotonic() > deadline:
                raise CutoverError(f"{function}: mapping not {want} after {self.wait_s} s")
            time.sleep(self.poll_s)

    def _set_stack_parameter(self, version: int) -> None:
        """Update the stack with its own template and every other parameter as it was."""
        cfn = client("cloudformation")
        stack = cfn.describe_stacks(StackName=self.stack)["Stacks"][0]
        values = {p["ParameterKey"]: p.get("ParameterValue")
                  for p in stack.get("Parameters", [])}
        if self.version_parameter not in values:
            raise CutoverError(
                f"stack {self.stack} has no parameter {self.version_parameter}; the replay "
                f"version {version} is active but the live functions were not re-pointed"
            )
        if values[self.version_parameter] == str(version):
            return
        parameters = [
            {"ParameterKey": key, "ParameterValue": str(version)}
            if key == self.version_parameter else {"ParameterKey": key, "UsePreviousValue": True}
            for key in values
        ]
        kwargs: dict[str, Any] = {
            "StackName": self.stack, "UsePreviousTemplate": True, "Parameters": parameters,
            "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        }
        # Deployed by `cdk deploy`, the stack is updated by the role it was deployed with,
        # so the operator needs no rights over the resources themselves.
        if stack.get("RoleARN"):
            kwargs["RoleARN"] = stack["RoleARN"]
        cfn.update_stack(**kwargs)
        deadline = time.monotonic() + self.wait_s
        while True:
            status = cfn.describe_stacks(StackName=self.stack)["Stacks"][0]["StackStatus"]
            if status == "UPDATE_COMPLETE":
                break
            if status.endswith(("FAILED", "ROLLBACK_COMPLETE")) or time.monotonic() > deadline:
                raise CutoverError(
                    f"stack {self.stack}: update of {self.version_parameter} to {version} "
                    f"ended {status}; version {version} is active, run the cut-over again"
                )
            time.sleep(self.poll_s)
        self.log(f"stack {self.stack}: {self.version_parameter}={version}")

    def _set_state_version(self, function: str, version: int) -> None:
        lam = client("lambda")
        config = lam.get_function_configuration(FunctionName=function)
        variables = dict((config.get("Environment") or {}).get("Variables") or {})
        if variables.get(topology.ENV_STATE_VERSION) == str(version):
            return
        variables[topology.ENV_STATE_VERSION] = str(version)
        lam.update_function_configuration(
            FunctionName=function, Environment={"Variables": variables}
        )
        deadline = time.monotonic() + self.wait_s
        while True:
            status = lam.get_function_configuration(FunctionName=function).get(
                "LastUpdateStatus", "Successful"
            )
            if status == "Successful":
                break
            if status == "Failed" or time.monotonic() > deadline:
                raise CutoverError(f"{function}: configuration update {status}")
            time.sleep(self.poll_s)
        self.log(f"{function}: state version {version}")


def _now_ms() -> int:
    return int(time.time() * 1000)

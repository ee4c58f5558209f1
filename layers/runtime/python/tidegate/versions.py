"""Which state version of a pipeline is live, and which windows each version publishes.

A replay rebuilds a pipeline's state from the log as a NEW state version beside the live
one (every state item is namespaced by version, state/keys.py). One item per pipeline,
`M#<pipeline>` / `ACTIVE`, names the live version and, for every version that was ever
switched to or away from, the watermark at the switch (`handover`).

Who publishes a window is decided by its close time `window_end + allowed_lateness`, the
moment a window becomes final, so that every window is published by exactly one version,
as after a Flink savepoint switch:

* without the item (no replay ever ran), every version publishes what it closes;
* the active version publishes windows closing after the watermark at which it became
  active (`from`), a superseded version those up to the watermark at which it was
  superseded (`until`): the old version finishes what it had claimed, the new one takes
  every window after;
* a version being built (neither) publishes nothing: windows the live version has already
  passed are closed silently (their result stays in the state table), the others wait,
  claimed, until the switch decides who owns them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from tidegate.errors import ConditionFailedError, TransactionConflictError, VersionSwitchError
from tidegate.state import keys
from tidegate.state.store import StateStore
from tidegate.watermark import MAX_WATERMARK, MIN_WATERMARK

ACTIVE_SK = "ACTIVE"
_MAX_SWITCH_ATTEMPTS = 8


class Decision(enum.Enum):
    PUBLISH = "publish"
    SKIP = "skip"  # another version publishes it: close without publishing
    HOLD = "hold"  # not decided until the switch: stay claimed


@dataclass(frozen=True)
class Ownership:
    """The windows one version publishes, by close time."""

    after: int = MIN_WATERMARK  # publishes windows closing after this...
    up_to: int = MAX_WATERMARK  # ...up to and including this
    pending: bool = False  # a version being built: holds windows past `after`

    def decide(self, close_at_ms: int) -> Decision:
        if self.pending:
            return Decision.SKIP if close_at_ms <= self.after else Decision.HOLD
        if self.after < close_at_ms <= self.up_to:
            return Decision.PUBLISH
        return Decision.SKIP


EVERYTHING = Ownership()


def active_pk(pipeline: str) -> str:
    return f"M#{pipeline}"


class ActiveVersions:
    """The `ACTIVE` item of one pipeline."""

    def __init__(self, store: StateStore, pipeline: str) -> None:
        self.store = store
        self.pipeline = pipeline
        self.pk = active_pk(pipeline)

    def read(self) -> dict[str, Any] | None:
        return self.store.get(self.pk, ACTIVE_SK)

    def active(self) -> int | None:
        item = self.read()
        return None if item is None else int(item["active"])

    def ensure(self, version: int, now_ms: int) -> int:
        """Record `version` as active unless a version is already recorded; returns the
        active version. Before the first replay there is no item: the live version is the
        pipeline file's, and it owns every window."""
        try:
            self.store.create_once({
                "PK": self.pk, "SK": ACTIVE_SK, "active": version, "switched_at": now_ms,
                "handover": {},
            })
        except ConditionFailedError as recorded:
            if recorded.current is not None:
                return int(recorded.current["active"])
        return version

    def ownership(self, version: int) -> Ownership:
        item = self.read()
        if item is None:
            return EVERYTHING
        active = int(item["active"])
        handover = item.get("handover") or {}
        mine = handover.get(str(version)) or {}
        if version == active:
            return Ownership(after=int(mine.get("from", MIN_WATERMARK)))
        if "until" in mine:
            return Ownership(int(mine.get("from", MIN_WATERMARK)), int(mine["until"]))
        # Being built: whatever the live version has already passed is the live version's.
        return Ownership(after=self.watermark(active), pending=True)

    def watermark(self, version: int) -> int:
        """The stored pipeline watermark of a version (its closer's floor)."""
        item = self.store.get(keys.meta_pk(self.pipeline, version), keys.PIPELINE_SK)
        return MIN_WATERMARK if item is None or "wm" not in item else int(item["wm"])

    def switch(self, to_version: int, now_ms: int, expected: int | None = None) -> int:
        """Make `to_version` active; returns the handover watermark.

        Refuses to go backwards or sideways (a version at or below the active one), and,
        given `expected`, to switch from any other version than that. The watermark of the
        outgoing version is checked in the same transaction: had its closer moved it since
        we read it, it might already be publishing windows past the handover.
        """
        for _ in range(_MAX_SWITCH_ATTEMPTS):
            item = self.read()
            if item is None:
                raise VersionSwitchError(
                    f"pipeline {self.pipeline!r}: no active version recorded (run ensure())"
                )
            active = int(item["active"])
            if expected is not None and active != expected:
                raise VersionSwitchError(
                    f"pipeline {self.pipeline!r}: active version is {active}, not {expected}"
                )
            if to_version <= active:
                raise VersionSwitchError(
                    f"pipeline {self.pipeline!r}: refusing to switch from version {active} "
                    f"to {to_version}: versions only move forward"
                )
            handover_wm = self.watermark(active)
            handover = dict(item.get("handover") or {})
            handover[str(active)] = {**(handover.get(str(active)) or {}), "until": handover_wm}
            handover[str(to_version)] = {"from": handover_wm}
            try:
                self.store.switch_active_version(
                    self.pk, ACTIVE_SK, active, to_version, handover, now_ms,
                    keys.meta_pk(self.pipeline, active), keys.PIPELINE_SK,
                    None if handover_wm == MIN_WATERMARK else handover_wm,
                )
                return handover_wm
            except TransactionConflictError:
                continue  # switched by someone else, or the watermark moved: read again
        raise VersionSwitchError(
            f"pipeline {self.pipeline!r}: the active version's watermark kept moving; "
            f"switch to {to_version} not applied after {_MAX_SWITCH_ATTEMPTS} attempts"
        )


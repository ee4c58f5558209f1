"""The active-version item: conditional switches that only move forward, and which version
publishes which window."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support import deployed
from tidegate.spec import Pipeline
from tidegate.state.dynamodb import DynamoStore
from tidegate.versions import ActiveVersions, Decision, Ownership, VersionSwitchError
from tidegate.watermark import MAX_WATERMARK, MIN_WATERMARK, WatermarkStore


@pytest.mark.parametrize(
    ("ownership", "close_at", "expected"),
    [
        (Ownership(), 0, Decision.PUBLISH),  # no replay ever: everything
        (Ownership(after=100), 100, Decision.SKIP),  # the previous version published it
        (Ownership(after=100), 101, Decision.PUBLISH),
        (Ownership(after=100, up_to=200), 200, Decision.PUBLISH),  # superseded at 200
        (Ownership(after=100, up_to=200), 201, Decision.SKIP),  # its successor's
        (Ownership(after=100, pending=True), 100, Decision.SKIP),  # live passed it
        (Ownership(after=100, pending=True), 101, Decision.HOLD),  # up to the switch
    ],
)
def test_window_ownership(ownership: Ownership, close_at: int, expected: Decision) -> None:
    assert ownership.decide(close_at) == expected


def _versions(env: object) -> tuple[ActiveVersions, DynamoStore]:
    store = DynamoStore(env.deployment.table)  # type: ignore[attr-defined]
    return ActiveVersions(store, env.deployment.pipeline.name), store  # type: ignore[attr-defined]


def test_switch_moves_forward_only_and_records_the_handover(
    moto_url: str, make_pipeline: Callable[..., Pipeline]
) -> None:
    pipeline = make_pipeline()
    with deployed(pipeline, moto_url) as env:
        versions, store = _versions(env)
        assert versions.ownership(2).decide(5) == Decision.PUBLISH  # no item: no gating
        assert versions.ensure(1, now_ms=1) == 1
        assert versions.ensure(3, now_ms=2) == 1  # an existing record is kept
        WatermarkStore(store, pipeline.name, 1).advance_pipeline(40_000)

        # a version being built holds what the live version has not passed yet
        assert versions.ownership(2) == Ownership(after=40_000, pending=True)

        assert versions.switch(2, now_ms=3, expected=1) == 40_000
        assert versions.active() == 2
        assert versions.ownership(2) == Ownership(after=40_000)
        assert versions.ownership(1) == Ownership(MIN_WATERMARK, 40_000)

        for backwards in (1, 2):
            with pytest.raises(VersionSwitchError, match="only move forward"):
                versions.switch(backwards, now_ms=4)
        with pytest.raises(VersionSwitchError, match="active version is 2, not 1"):
            versions.switch(3, now_ms=4, expected=1)
        assert versions.active() == 2

        # a later switch keeps version 1's range and closes version 2's
        WatermarkStore(store, pipeline.name, 2).advance_pipeline(90_000)
        assert versions.switch(5, now_ms=5) == 90_000
        assert versions.ownership(1) == Ownership(MIN_WATERMARK, 40_000)
        assert versions.ownership(2) == Ownership(40_000, 90_000)
        assert versions.ownership(5) == Ownership(90_000, MAX_WATERMARK)


def test_switch_rereads_a_watermark_that_moved_meanwhile(
    moto_url: str, make_pipeline: Callable[..., Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the live closer advances its watermark between the switch's read and its write
    pipeline = make_pipeline()
    with deployed(pipeline, moto_url) as env:
        versions, store = _versions(env)
        versions.ensure(1, now_ms=1)
        live = WatermarkStore(store, pipeline.name, 1)
        live.advance_pipeline(10_000)
        real = ActiveVersions.watermark
        reads: list[int] = []

        def racing_read(self: ActiveVersions, version: int) -> int:
            value = real(self, version)
            reads.append(value)
            if len(reads) == 1:
                live.advance_pipeline(20_000)  # the closer wins the race
            return value

        monkeypatch.setattr(ActiveVersions, "watermark", racing_read)
        # WHEN the switch is made THEN it hands over at the watermark actually stored
        assert versions.switch(2, now_ms=2) == 20_000
        assert reads == [10_000, 20_000]
        assert versions.ownership(1).up_to == 20_000


def test_state_version_from_the_environment(make_pipeline: Callable[..., Pipeline]) -> None:
    from tidegate import topology
    from tidegate.runtime import Runtime

    env = {name: "x" for name in topology.HANDLER_ENV}
    env[topology.ENV_PIPELINE] = make_pipeline().to_json()
    assert Runtime.from_env(env).pipeline.state_version == 1
    env[topology.ENV_STATE_VERSION] = "4"
    runtime = Runtime.from_env(env)
    assert runtime.pipeline.state_version == 4
    assert runtime.watermarks.pk.endswith("#v4")
    env[topology.ENV_STATE_VERSION] = "0"
    with pytest.raises(RuntimeError, match="TIDEGATE_STATE_VERSION='0'"):
        Runtime.from_env(env)

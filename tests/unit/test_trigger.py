"""The event-time trigger: when a window is final, first published, next looked at."""

from __future__ import annotations

from tests.support import pipeline_spec
from tidegate.spec import parse_pipeline
from tidegate.windows.trigger import EventTimeTrigger


def test_final_at_end_plus_lateness_and_first_at_the_end_with_updates() -> None:
    final_only = EventTimeTrigger(lateness_ms=500, early_updates=False)
    updates = EventTimeTrigger(lateness_ms=500, early_updates=True)

    assert final_only.final_at(10_000) == updates.final_at(10_000) == 10_500
    assert final_only.first_at(10_000) == 10_500
    assert updates.first_at(10_000) == 10_000
    # With every event already carried by a version, only the close is left to do.
    assert updates.next_at(10_000, unpublished=True) == 10_000
    assert updates.next_at(10_000, unpublished=False) == 10_500
    assert final_only.next_at(10_000, unpublished=True) == 10_500


def test_read_from_the_pipeline() -> None:
    pipeline = parse_pipeline(pipeline_spec(allowed_lateness="2s", emit="updates"))
    assert EventTimeTrigger.of(pipeline) == EventTimeTrigger(2_000, True)
    assert EventTimeTrigger.of(parse_pipeline(pipeline_spec())).early_updates is False

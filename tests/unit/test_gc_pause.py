"""The collector is off for a batch and back on after it, whatever happens in the batch."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from tidegate import sources
from tidegate.gc_pause import collector_paused
from tidegate.state.memory import MemoryStore
from tidegate_dev.bench import ingest_cpu, workload


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_off_inside_on_after_even_when_the_block_raises() -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("a batch that failed")
    assert gc.isenabled()


def test_a_block_entered_with_the_collector_off_leaves_it_off() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # whoever turned it off turns it on


def test_nested_blocks_turn_it_on_only_when_the_outer_one_ends() -> None:
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


class _Watching(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bool] = []

    def write_group(self, item: dict[str, Any], expected_version: int | None) -> None:
        self.seen.append(gc.isenabled())
        super().write_group(item, expected_version)


def test_a_batch_is_processed_with_the_collector_off() -> None:
    pipeline = workload.pipeline("tumbling")
    ingest = ingest_cpu.ingestor(pipeline)
    store = _Watching()
    ingest.store = store  # type: ignore[assignment]
    lines = workload.Workload(events=200).lines()
    outcome = ingest.process(sources.records_of(workload.kinesis_event(lines, 0)))
    assert outcome.aggregated == 200
    assert store.seen and not any(store.seen)
    assert gc.isenabled()

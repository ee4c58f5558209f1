"""`expected_keys` sizes the open-window index when `index_shards` is not given."""

from __future__ import annotations

import pytest

from tests.support import pipeline_spec
from tidegate.spec import PipelineError, parse_pipeline, pipeline_from_json


def shards(**overrides: object) -> int:
    pipeline = parse_pipeline(pipeline_spec(**overrides))
    # The handlers get the pipeline as JSON: the derived count must survive that trip.
    assert pipeline_from_json(pipeline.to_json()).index_shards == pipeline.index_shards
    return pipeline.index_shards


def test_without_expected_keys_the_default_stays_four() -> None:
    assert shards() == 4


@pytest.mark.parametrize(("expected_keys", "window", "count"), [
    # 2 index writes a key per minute at <= 500 write units a second a partition
    (100, {"type": "tumbling", "size": "1m"}, 1),
    (15_000, {"type": "tumbling", "size": "1m"}, 1),
    (15_001, {"type": "tumbling", "size": "1m"}, 2),
    (10_000_000, {"type": "tumbling", "size": "1m"}, 667),
    # sliding windows move each pane every slide, sessions every gap
    (10_000_000, {"type": "sliding", "size": "5m", "slide": "1m"}, 667),
    (1_000_000, {"type": "session", "gap": "30s"}, 134),
    # capped where one coordinator still lists every partition quickly
    (10_000_000, {"type": "tumbling", "size": "1s"}, 4096),
])
def test_expected_keys_derive_the_index_shards(
    expected_keys: int, window: dict[str, str], count: int
) -> None:
    assert shards(expected_keys=expected_keys, window=window) == count


def test_an_explicit_index_shards_wins() -> None:
    assert shards(expected_keys=10_000_000, index_shards=8) == 8


def test_a_bad_expected_keys_is_named() -> None:
    with pytest.raises(PipelineError, match=r"expected_keys: Input should be greater than"):
        parse_pipeline(pipeline_spec(expected_keys=0))

"""Session merging, as a pure function of the sessions and events of one key."""

from __future__ import annotations

import pytest

from tidegate.windows.session import Session, SessionAssigner


def _single(t: int) -> Session:
    return Session(t, t, {"n": 1}, 1)


def _merge_acc(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {"n": a["n"] + b["n"]}


def _spans(sessions: list[Session], gap: int) -> list[tuple[int, int, int]]:
    return [(s.start_ms, s.end_ms(gap), s.n) for s in sessions]


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0, 5, 9], [(0, 19, 3)]),  # each within the gap of the last
        ([0, 10], [(0, 20, 2)]),  # exactly `gap` apart: the intervals touch, and merge
        ([0, 11], [(0, 10, 1), (11, 21, 1)]),  # one ms more: apart
        ([0, 9, 30, 25], [(0, 19, 2), (25, 40, 2)]),  # out of order still merges
        ([18, 0, 9], [(0, 28, 3)]),  # the middle event bridges two sessions
    ],
)
def test_overlapping_or_touching_intervals_merge(
    times: list[int], expected: list[tuple[int, int, int]]
) -> None:
    assigner = SessionAssigner(gap_ms=10)
    merged = assigner.merge([_single(t) for t in times], _merge_acc)
    assert _spans(merged, 10) == expected
    assert sum(s.acc["n"] for s in merged) == len(times)


def test_max_length_starts_a_new_session() -> None:
    # Events every 5 ms would chain forever; max_length 12 caps first..last below 12 ms.
    assigner = SessionAssigner(gap_ms=10, max_length_ms=12)
    merged = assigner.merge([_single(t) for t in (0, 5, 10, 15, 20)], _merge_acc)
    assert _spans(merged, 10) == [(0, 20, 3), (15, 30, 2)]


def test_stored_sessions_keep_their_flag_and_versions_carry_over() -> None:
    assigner = SessionAssigner(gap_ms=10)
    stored = Session(0, 4, {"n": 2}, 2, stored=True, version=3, published_n=2)
    merged = assigner.merge([stored, _single(8)], _merge_acc)
    (session,) = merged
    assert session.stored and session.n == 3 and session.version == 3
    assert session.published_n != session.n  # the merged content is unpublished

"""`tidegate bench close-sim` on a few windows: every window closed once, by any number of
workers (CI runs this small version only; the figures in docs/benchmarks come from 12,000 and
100,000 windows)."""

from __future__ import annotations

import json

import pytest

from tidegate_dev.bench import close_sim
from tidegate_dev.cli.main import main


def test_the_simulation_closes_every_written_window_with_any_worker_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["bench", "close-sim", "--windows", "30", "--workers", "1,3", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["index_shards"] == 3
    assert [r["workers"] for r in report["runs"]] == [1, 3]
    for run in report["runs"]:
        assert run["windows_closed"] == run["distinct_idempotency_keys"] == 30
        assert run["missing"] == run["conflicting"] == run["wrong_content"] == 0
        assert run["left_open"] == 0 and run["ok"] is True


def test_the_written_windows_carry_what_the_check_expects() -> None:
    opened = close_sim.open_windows(close_sim.sim_pipeline(2), 4)
    assert [item["n"] for item in opened.items] == [1, 2, 3, 1]
    assert opened.expected["u2"] == {"count": 3, "total_value": 6, "max_value": 3}
    assert {item["open_pk"] for item in opened.items} <= {
        "open#bench-closesim#v1#0", "open#bench-closesim#v1#1"}


def test_worker_counts_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "close-sim", "--windows", "3", "--workers", "1,x"]) == 1
    assert "counts like 1,2,4,8, not '1,x'" in capsys.readouterr().err

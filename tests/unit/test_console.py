"""What people read: progress in a log, and the results table."""

from __future__ import annotations

import pytest

from tidegate_dev.cli import console


def test_progress_to_a_log_prints_a_line_at_most_every_interval_and_at_the_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = {"now": 100.0}
    monkeypatch.setattr(console.time, "monotonic", lambda: clock["now"])
    with console.progress_bar("ingesting") as update:  # stderr is captured: not a terminal
        for done, at in ((0, 0.0), (10, 1.0), (20, 16.0), (30, 20.0), (40, 21.0)):
            clock["now"] = 100.0 + at
            update(done, 40)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "ingesting 0/40 (0 %) after 0 s",
        "ingesting 20/40 (50 %) after 16 s",
        "ingesting 40/40 (100 %) after 21 s",
    ]


def _result(user: str, start: int, n: int, version: int = 1) -> dict:
    return {"key": {"user": user}, "window_start": start, "window_end": start + 60_000,
            "aggregates": {"n": n}, "version": version,
            "idempotency_key": f"p/{user}/{start}/{version}"}


def test_the_results_table_shows_a_redelivered_result_once_and_says_so() -> None:
    from rich.console import Console

    results = [_result("a", 0, 3), _result("b", 0, 1), _result("a", 0, 3),
               _result("a", 60_000, 2), _result("a", 60_000, 2)]
    table = console.results_table(results)
    assert table.title == "results (3 windows)"
    assert table.row_count == 3
    assert table.caption == "2 repeated deliveries (same idempotency key) not shown"
    recorder = Console(record=True, width=100)
    recorder.print(console.results_table(results, limit=2))
    text = " ".join(recorder.export_text().split())
    assert "first 2 of 3 by window start; 2 repeated deliveries" in text


def test_a_table_printed_to_a_log_keeps_its_headers_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rich.table import Table

    monkeypatch.delenv("COLUMNS", raising=False)
    table = Table(title="closer fan-out")
    for name in ("workers", "seconds", "windows/s", "published", "distinct keys", "missed",
                 "conflicting", "left open", "ok"):
        table.add_column(name, justify="right")
    table.add_row("4", "1,508.8", "66.3", "100,000", "100,000", "0", "0", "0", "yes")
    console.console_for().print(table)  # stdout is captured: not a terminal
    text = capsys.readouterr().out
    assert "…" not in text
    assert "distinct keys" in text and "1,508.8" in text and "100,000" in text

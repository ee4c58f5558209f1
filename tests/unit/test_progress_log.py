"""Progress written to a file or CI log: plain lines, not a silent rich bar."""

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

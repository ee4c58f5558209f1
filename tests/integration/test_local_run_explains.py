"""`tidegate local run` says what happened to every record: why each one that was not
aggregated was not (a table on stderr, `--dead-letters` and `--late` files), with the
accounting kept under `--follow` too, the file's shard count used, and short bare-integer
durations pointed out by `validate`."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import assert_accounting, line, pipeline_spec
from tidegate.spec import parse_pipeline
from tidegate_dev.cli.main import main
from tidegate_dev.local.producer import put_events
from tidegate_dev.local.runner import run_pipeline

S = 1_000


def _write_pipeline(tmp_path: Path, **overrides: Any) -> tuple[Path, dict[str, Any]]:
    name = f"explain-{uuid.uuid4().hex[:6]}"
    spec = pipeline_spec(name=name, **overrides)
    spec["source"] = {**spec["source"], "stream": f"{name}-events", **overrides.get(
        "source", {})}
    spec["sink"] = {"type": "kinesis", "stream": f"{name}-results"}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path, spec


def test_dead_letters_and_late_records_are_written_and_explained(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN one good event, one that closes its window, one late and two malformed
    WHEN the run writes --dead-letters and --late
    THEN each file holds its records with reason, coordinates and payload, and the table
    on stderr names each reason once with an example, after the summary on stdout."""
    path, _ = _write_pipeline(tmp_path)
    lines = [line("a", 1 * S, 1), line("a", 30 * S, 2), line("a", 2 * S, 3),
             b"{not json", json.dumps({"user": "b", "v": 1}).encode()]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    dead, late = tmp_path / "dead.jsonl", tmp_path / "late.jsonl"
    code = main(["local", "run", str(path), "--events", str(events), "--results",
                 str(tmp_path / "results.jsonl"), "--dead-letters", str(dead), "--late",
                 str(late), "--shards", "1", "--batch-size", "1", "--endpoint-url", moto_url])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.splitlines()[-1])
    assert_accounting(summary)
    assert (summary["late"], summary["dead_lettered"]) == (1, 2)

    dead_rows = [json.loads(x) for x in dead.read_text(encoding="utf-8").splitlines()]
    late_rows = [json.loads(x) for x in late.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["reason"] for r in dead_rows) == ["invalid_json", "invalid_timestamp"]
    assert [r["reason"] for r in late_rows] == ["late"]
    for row in dead_rows + late_rows:
        assert row["source"]["partition"].startswith("shardId-")
        assert row["payload"] == base64.b64decode(row["data_b64"]).decode("utf-8")
    assert late_rows[0]["payload"] == lines[2].decode()

    table = " ".join(captured.err.split())
    for reason, example in (("invalid_json", "Invalid JSON"), ("late", "was final at")):
        assert reason in table and example in table
    assert "Traceback" not in captured.err


def test_the_file_shard_count_is_used_unless_given(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tidegate_dev.cli.local_run as local_run

    used: list[int] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        used.append(kwargs["shards"])
        return run_pipeline(*args, **kwargs)

    monkeypatch.setattr(local_run, "run_pipeline", recording)
    events = tmp_path / "events.jsonl"
    events.write_bytes(line("a", 1 * S, 1) + b"\n")
    path, _ = _write_pipeline(tmp_path, source={"type": "kinesis", "shards": 3})
    argv = ["local", "run", str(path), "--events", str(events), "--results",
            str(tmp_path / "r.jsonl"), "--quiet", "--endpoint-url", moto_url]
    assert main(argv) == 0
    assert main([*argv, "--shards", "2"]) == 0
    assert used == [3, 2]
    summaries = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [s["aggregated"] for s in summaries] == [1, 1]


def test_a_followed_run_counts_what_others_put_on_the_source(
    moto_url: str, tmp_path: Path
) -> None:
    """Events produced while the run follows its source are events in: the summary's
    accounting holds with them."""
    path, _ = _write_pipeline(tmp_path)
    from tidegate.spec import load_pipeline_file

    pipeline = load_pipeline_file(path)
    lines = [line("a", 1 * S, 1), line("b", 2 * S, 2)]
    extra = [line("a", 3 * S, 4), line("c", 4 * S, 5), b"{broken"]

    class Follow:
        stop = threading.Event()

        def caught_up(self, url: str, deployment: Any) -> None:
            # What `tidegate produce` would do from another terminal.
            put_events(deployment.source_stream, pipeline, extra)
            self.stop.set()

    output = run_pipeline(pipeline, lines, endpoint_url=moto_url, follow=Follow())
    assert output.summary["events_in"] == len(lines) + len(extra)
    assert_accounting(output.summary)
    assert output.summary["dead_lettered"] == 1


def test_validate_warns_about_bare_integer_durations_under_a_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = pipeline_spec(name="short", window={"type": "session", "gap": 30},
                         watermark={"delay": 5000, "idle_timeout": "1m"})
    parse_pipeline(spec)  # valid: the warning is advice, not a refusal
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert "window.gap: 30 is 30 milliseconds" in err
    assert "watermark.delay" not in err  # 5000 ms is 5 s: plainly meant

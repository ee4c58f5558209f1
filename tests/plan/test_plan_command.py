"""`tidegate plan`: the command's JSON, its table, its calibration and its errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tidegate_dev.cli.main import main
from tidegate_dev.plan import calibration
from tidegate_dev.plan.shape import shape_of
from tidegate_dev.plan.zipf import Zipf

CLICKSTREAM = str(Path(__file__).resolve().parents[2] / "pipelines" / "clickstream.yaml")


def run_json(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    code = main(["plan", CLICKSTREAM, "--events-per-second", "10000", "--keys", "100000",
                 "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_json_is_one_object_with_every_component(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys)
    assert set(report) >= {"workload", "pipeline", "assumptions", "source", "ingest",
                           "dynamodb", "closer", "usd_per_hour", "flags", "calibration",
                           "prices"}
    assert report["workload"]["events_per_second"] == 10_000
    assert report["workload"]["keys"] == 100_000
    assert report["source"]["kind"] == "kinesis" and report["source"]["shards"] >= 10
    ingest = report["ingest"]
    assert ingest["concurrency"] == report["source"]["shards"] * ingest["parallelization_factor"]
    assert ingest["duration_ms"] > 0
    ddb = report["dynamodb"]
    assert set(ddb["wru_per_s"]) == {"ingest", "watermarks", "open_index", "closer", "total"}
    assert ddb["wru_per_s"]["total"] == pytest.approx(
        sum(v for k, v in ddb["wru_per_s"].items() if k != "total"))
    assert ddb["wru_per_partition"] <= 1_000 and ddb["rru_per_partition"] <= 3_000
    assert report["closer"]["windows_per_period"] <= 100_000  # never more than the keys
    usd = report["usd_per_hour"]
    assert usd["total"] == pytest.approx(sum(v for k, v in usd.items() if k != "total"))
    assert isinstance(report["flags"], list)
    assert report["calibration"]["measured_on"] and report["prices"]["date"]


def test_the_pipelines_window_picks_its_calibration(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sliding = tmp_path / "sliding.yaml"
    text = Path(CLICKSTREAM).read_text().replace(
        "window: {type: tumbling, size: 1m}", "window: {type: sliding, size: 5m, slide: 1m}")
    sliding.write_text(text)
    code = main(["plan", str(sliding), "--events-per-second", "1000", "--keys", "1000",
                 "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    cal = calibration.load()
    assert report["pipeline"]["window"] == "sliding"
    assert report["calibration"]["window"]["closer_requests_per_window"] == pytest.approx(
        cal.windows["sliding"].closer_requests_per_window)
    # Five 1-minute windows per key per 5 minutes, closing one a minute.
    assert report["closer"]["period_s"] == 60
    assert report["closer"]["windows_per_window_size"] == pytest.approx(
        5 * report["closer"]["windows_per_period"])


def test_table_prints_the_components_and_the_assumptions(
    capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", CLICKSTREAM, "--events-per-second", "1000", "--keys", "10000"])
    out = capsys.readouterr().out
    assert code == 0
    for words in ("Kinesis shards", "Lambda ingest concurrency", "DynamoDB WRU/s",
                  "hottest item", "index partitions", "$/hour total", "assumptions:",
                  "Calibration ("):
        assert words in out


def test_committed_calibration_covers_every_window_type() -> None:
    cal = calibration.load()
    assert set(cal.windows) == {"tumbling", "sliding", "session"}
    assert cal.measured_on and cal.machine
    for w in cal.windows.values():
        assert 0 < w.cpu_s_per_event < 1e-3
        assert w.closer_requests_per_window > 0 and w.windows_closed > 0
        assert w.pane_item_bytes > 100


def test_item_sizes_follow_the_pipelines_aggregates(make_pipeline: Any) -> None:
    cal = calibration.load()
    one = shape_of(make_pipeline(aggregates={"n": {"op": "count"}}), cal)
    five = shape_of(make_pipeline(), cal)  # count, sum, max, min, avg
    assert five.pane_bytes > one.pane_bytes
    assert five.acc_bytes > one.acc_bytes
    # A mark is the partition id and a 64-digit position.
    assert five.mark_bytes >= len("shardId-000000000000") + 64


@pytest.mark.parametrize(("args", "message"), [
    (["--events-per-second", "0", "--keys", "10"], "--events-per-second must be positive"),
    (["--events-per-second", "1e3", "--keys", "ten"], "--keys must be an integer"),
    (["--events-per-second", "10", "--keys", "10", "--zipf", "-1"], "--zipf must be >= 0"),
    (["--events-per-second", "10", "--keys", "10", "--batch-size", "-5"],
     "--batch-size must be positive"),
    (["--keys", "10"], "--events-per-second"),
])
def test_bad_arguments_say_what_is_wrong(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["plan", CLICKSTREAM, *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_out_of_range_batch_size_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", CLICKSTREAM, "--events-per-second", "10", "--keys", "10",
                 "--batch-size", "20000"])
    assert code == 2
    assert "--batch-size must be 1..10,000" in capsys.readouterr().err


def test_a_broken_calibration_file_is_named_with_its_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = calibration.load().as_dict()
    data["windows"]["tumbling"]["cpu_s_per_event"] = "fast"
    broken = tmp_path / "cal.json"
    broken.write_text(json.dumps(data))
    code = main(["plan", CLICKSTREAM, "--events-per-second", "10", "--keys", "10",
                 "--calibration", str(broken)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(broken) in err and "windows.tumbling.cpu_s_per_event" in err

    code = main(["plan", CLICKSTREAM, "--events-per-second", "10", "--keys", "10",
                 "--calibration", str(tmp_path / "missing.json")])
    assert code == 2 and "no such calibration file" in capsys.readouterr().err


def test_a_bad_pipeline_file_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    code = main(["plan", str(bad), "--events-per-second", "10", "--keys", "10"])
    assert code == 2
    assert "error:" in capsys.readouterr().err


def test_save_calibration_needs_measure(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    code = main(["plan", CLICKSTREAM, "--events-per-second", "10", "--keys", "10",
                 "--save-calibration", str(tmp_path / "c.json")])
    assert code == 2 and "--save-calibration needs --measure" in capsys.readouterr().err


def test_defaults_are_the_deployed_settings() -> None:
    """The plan sizes what `cdk deploy` creates: batch, batching window and memory sizes."""
    from infra.constructs.kafka import KafkaSourceSettings
    from infra.constructs.pipeline import CloserSettings, IngestSettings
    from tidegate_dev.plan.model import Assumptions, Workload

    ingest, closer, a = IngestSettings(), CloserSettings(), Assumptions()
    assert a.kafka_max_pollers == KafkaSourceSettings().max_pollers
    assert Workload.__dataclass_fields__["batch_size"].default == ingest.batch_size
    assert a.batching_window_s == ingest.max_batching_window_s
    assert a.ingest_memory_mb == ingest.memory_mb
    assert a.closer_memory_mb == closer.memory_mb
    assert a.closer_schedule_per_hour == 60 / closer.schedule_minutes


def test_zipf_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="keys must be at least 1"):
        Zipf(0, 1.0)
    with pytest.raises(ValueError, match="exponent must be >= 0"):
        Zipf(10, -0.5)


@pytest.mark.slow
def test_measure_runs_the_bench_functions_and_saves_what_it_used(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a tiny measurement (the real one takes a minute or two)
    monkeypatch.setattr(calibration, "MEASURE_SIZES", calibration.Sizes(
        cpu_events=200, cpu_repeats=1, write_events=200, close_events=300, close_keys=3))
    saved = tmp_path / "cal.json"
    code = main(["plan", CLICKSTREAM, "--events-per-second", "1000", "--keys", "1000",
                 "--measure", "--save-calibration", str(saved), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["calibration"]["source"] == "measured now"
    # THEN the saved file is a calibration the plan reads back, with what was used
    cal = calibration.load(saved)
    used = report["calibration"]["window"]
    assert used["cpu_s_per_event"] == cal.windows["tumbling"].cpu_s_per_event
    for w in cal.windows.values():
        assert w.windows_closed > 0 and w.closer_requests_per_window > 1
        assert w.pane_item_bytes > 100 and w.writes_over_floor >= 1
        assert w.overhead_requests_per_batch >= 1  # the watermark update of each batch

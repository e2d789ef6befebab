"""The prediction log as plain functions: writing, reading, rejections, retention, labels (no server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from lifecycle.errors import LifecycleError
from serving.prediction_log import (
    LogSettings,
    PredictionLog,
    attach_labels,
    count_rejected,
    find_request,
    new_request_id,
    process_log,
    prune,
    read_predictions,
    summary_line,
)

INPUTS = ["dteday", "temp", "season"]


def writer(root: Path, version: str = "1", backend: str = "bentoml", inputs="all") -> PredictionLog:
    return PredictionLog(LogSettings(root=str(root), inputs=inputs), "bikes", version, backend)


def records(n: int, start: int = 0) -> list[dict]:
    return [
        {"dteday": f"2012-01-{1 + i % 28:02d}", "temp": 0.1 * i, "season": "winter", "order_id": 1000 + i}
        for i in range(start, start + n)
    ]


def test_a_request_becomes_one_row_per_record_with_its_id_version_and_keys(tmp_path):
    log = writer(tmp_path)
    log.record("req-1", records(3), INPUTS, [1.5, 2.5, 3.5], None, 4.2)
    log.record("req-2", records(1, 3), INPUTS, [9.0], None, 1.0)
    table = read_predictions(tmp_path, "bikes")
    frame = table.frame
    assert len(frame) == 4
    assert list(frame["request_id"]) == ["req-1"] * 3 + ["req-2"]
    assert list(frame["row"]) == [0, 1, 2, 0]
    assert list(frame["prediction"]) == [1.5, 2.5, 3.5, 9.0]
    assert set(frame["model_version"]) == {"1"} and set(frame["backend"]) == {"bentoml"}
    assert table.input_columns == INPUTS and table.key_columns == ["order_id"]
    assert list(frame["order_id"]) == [1000, 1001, 1002, 1003]
    assert frame["timestamp"].dt.tz is not None and (frame["latency_ms"] > 0).all()
    assert frame["label"].isna().all()
    assert "4 rows from 2 requests; versions v1; backends bentoml" in summary_line(table)


def test_input_logging_can_be_restricted_or_turned_off_and_keys_stay(tmp_path):
    writer(tmp_path / "some", inputs=["temp"]).record("r", records(2), INPUTS, [1, 2], None, 1.0)
    writer(tmp_path / "none", inputs="none").record("r", records(2), INPUTS, [1, 2], None, 1.0)
    some = read_predictions(tmp_path / "some", "bikes")
    none = read_predictions(tmp_path / "none", "bikes")
    assert some.input_columns == ["temp"] and "dteday" not in some.frame
    assert none.input_columns == [] and list(none.frame["order_id"]) == [1000, 1001]


def test_classifier_probabilities_and_numpy_values_are_logged_as_plain_json(tmp_path):
    import numpy as np

    writer(tmp_path).record("r", records(2), INPUTS, np.array([0, 1]), np.array([0.2, 0.9]), 1.0)
    frame = read_predictions(tmp_path, "bikes").frame
    assert list(frame["prediction"]) == [0, 1] and list(frame["probability"]) == [0.2, 0.9]


def test_rejections_are_counted_not_logged_as_predictions(tmp_path):
    log = writer(tmp_path)
    log.reject(422, "record 0: `temp` is 'hot'; expected a finite number or null.")
    log.reject(413, "too big")
    assert log.rejected == 2 and count_rejected(tmp_path, "bikes") == 2
    assert read_predictions(tmp_path, "bikes").frame.empty


def test_a_client_request_id_is_kept_when_usable_else_a_uuid_is_made():
    assert new_request_id("order-17:retry.2") == "order-17:retry.2"
    made = new_request_id("bad id with spaces")
    assert made != "bad id with spaces" and len(made) == 36
    assert new_request_id(None) != new_request_id(None)


def test_logging_off_gives_no_writer_and_the_environment_moves_the_folder(tmp_path, monkeypatch):
    assert process_log({"root": str(tmp_path), "enabled": False}, "m", "1", "zenml") is None
    monkeypatch.setenv("MLOPS_PREDICTION_LOG", str(tmp_path / "elsewhere"))
    log = process_log({"root": str(tmp_path)}, "m", "1", "zenml")
    assert log.root == tmp_path / "elsewhere"
    assert process_log({"root": str(tmp_path)}, "m", "1", "zenml") is log  # one writer per process


def test_since_until_select_rows_and_retention_removes_old_days(tmp_path):
    log = writer(tmp_path)
    log.record("today", records(1), INPUTS, [1.0], None, 1.0)
    old = tmp_path / "bikes" / "2000-01-01"
    old.mkdir()
    (old / "predictions-bentoml-1-x.jsonl").write_text(
        json.dumps({"request_id": "old", "row": 0, "timestamp": "2000-01-01T10:00:00Z", "model_version": "0"}) + "\n"
    )
    assert set(read_predictions(tmp_path, "bikes").frame["request_id"]) == {"today", "old"}
    assert set(read_predictions(tmp_path, "bikes", since="2020-01-01").frame["request_id"]) == {"today"}
    assert set(read_predictions(tmp_path, "bikes", until="2000-01-02").frame["request_id"]) == {"old"}
    assert prune(tmp_path, "bikes", retention_days=30) == [old]
    assert not old.exists() and len(read_predictions(tmp_path, "bikes").frame) == 1


def test_a_line_cut_short_by_a_crash_is_skipped_and_counted(tmp_path):
    log = writer(tmp_path)
    log.record("whole", records(1), INPUTS, [1.0], None, 1.0)
    path = next((tmp_path / "bikes").rglob("predictions-*.jsonl"))
    with open(path, "a") as handle:
        handle.write('{"request_id": "cut", "row"')
    table = read_predictions(tmp_path, "bikes")
    assert list(table.frame["request_id"]) == ["whole"] and table.broken_lines == 1


def test_labels_join_on_request_id_and_row_and_report_unmatched_and_duplicates(tmp_path):
    log = writer(tmp_path)
    log.record("a", records(2), INPUTS, [1.0, 2.0], None, 1.0)
    log.record("b", records(1, 2), INPUTS, [3.0], None, 1.0)
    truth = pd.DataFrame(
        {
            "request_id": ["a", "a", "b", "b", "nope", "a"],
            "row": [0, 1, 0, 0, 0, 1],
            "cnt": [10, 20, 30, 31, 99, None],
        }
    )
    report = attach_labels(tmp_path, "bikes", truth, "cnt")
    assert (report.labels, report.matched_labels, report.labelled_rows) == (6, 3, 3)
    assert (report.unmatched, report.duplicates, report.missing_label, report.relabelled) == (1, 1, 1, 0)
    frame = read_predictions(tmp_path, "bikes").frame
    assert list(frame["label"]) == [10, 20, 31]  # the last of two labels for b/0 wins
    again = attach_labels(tmp_path, "bikes", truth.iloc[:1].assign(cnt=11), "cnt")
    assert again.relabelled == 1 and list(read_predictions(tmp_path, "bikes").frame["label"]) == [11, 20, 31]


def test_labels_join_on_a_kept_key_and_a_missing_column_is_named(tmp_path):
    writer(tmp_path).record("a", records(3), INPUTS, [1.0, 2.0, 3.0], None, 1.0)
    truth = pd.DataFrame({"order_id": ["1001", "1002", "5"], "cnt": [7, 8, 9]})
    report = attach_labels(tmp_path, "bikes", truth, "cnt", keys=["order_id"])
    assert (report.matched_labels, report.unmatched) == (2, 1)
    labels = read_predictions(tmp_path, "bikes").frame["label"]
    assert labels.isna().tolist() == [True, False, False] and list(labels[1:]) == [7, 8]
    with pytest.raises(LifecycleError, match="no column customer"):
        attach_labels(tmp_path, "bikes", truth, "cnt", keys=["customer"])
    with pytest.raises(LifecycleError, match="keeps no field customer"):
        attach_labels(tmp_path, "bikes", truth.rename(columns={"order_id": "customer"}), "cnt", keys=["customer"])


def test_find_request_returns_the_rows_of_one_request(tmp_path):
    log = writer(tmp_path)
    log.record("a", records(2), INPUTS, [1.0, 2.0], None, 1.0)
    log.record("b", records(1), INPUTS, [3.0], None, 1.0)
    found = find_request(tmp_path, "a")
    assert list(found["row"]) == [0, 1] and set(found["model_name"]) == {"bikes"}
    assert find_request(tmp_path, "zzz").empty


def test_nothing_answered_is_lost_when_the_writing_process_is_killed(tmp_path):
    """A process writes and reports each request as it is done, then is SIGKILLed mid-burst: every request it
    reported done is in the log (the write reached the kernel before the report)."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from serving.prediction_log import LogSettings, PredictionLog
        log = PredictionLog(LogSettings(root={str(tmp_path)!r}), "bikes", "1", "zenml")
        i = 0
        while True:
            log.record(f"r{{i}}", [{{"temp": i}}], ["temp"], [float(i)], None, 0.1)
            print(i, flush=True)
            i += 1
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    done = [process.stdout.readline() for _ in range(2000)]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    answered = {f"r{line.strip()}" for line in done if line.strip()}
    logged = set(read_predictions(tmp_path, "bikes").frame["request_id"])
    assert len(answered) == 2000 and answered <= logged


def test_a_scored_table_is_logged_like_requests_one_id_per_row(tmp_path):
    table = pd.DataFrame(records(4))
    writer(tmp_path, backend="batch").record_table(
        [f"batch-x-{i}" for i in range(4)], table, INPUTS, [1.0, 2.0, 3.0, 4.0], None, 12.0, chunk_rows=3
    )
    logged = read_predictions(tmp_path, "bikes")
    frame = logged.frame
    assert list(frame["request_id"]) == [f"batch-x-{i}" for i in range(4)] and set(frame["row"]) == {0}
    assert list(frame["prediction"]) == [1.0, 2.0, 3.0, 4.0] and set(frame["backend"]) == {"batch"}
    assert logged.input_columns == INPUTS and list(frame["order_id"]) == [1000, 1001, 1002, 1003]
    assert list(frame["temp"]) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    # The same lines as a server writes, so labels and trace work on batch predictions too.
    report = attach_labels(tmp_path, "bikes", pd.DataFrame({"request_id": ["batch-x-2"], "cnt": [5]}), "cnt")
    assert report.labelled_rows == 1 and find_request(tmp_path, "batch-x-2")["label"].tolist() == [5]


def test_smoke_test_requests_are_logged_but_not_read_as_traffic(tmp_path):
    log = writer(tmp_path)
    log.record("smoke-bikes-v1-abc123", records(2), INPUTS, [1.0, 2.0], None, 1.0)
    log.record("real", records(1), INPUTS, [3.0], None, 1.0)
    assert list(read_predictions(tmp_path, "bikes").frame["request_id"]) == ["real"]
    assert len(read_predictions(tmp_path, "bikes", smoke_tests=True).frame) == 3
    assert len(find_request(tmp_path, "smoke-bikes-v1-abc123")) == 2


def test_each_row_carries_its_servers_role_and_the_shadow_is_judged_on_what_clients_got(tmp_path):
    """Production, a canary and a shadow write one log; the shadow's answers pair with whichever answer the client
    got (production's or the canary's) on request id and row, and labels score both sides."""
    from workflows.served import shadow_comparison

    def role_writer(version: str, role: str) -> PredictionLog:
        return PredictionLog(LogSettings(root=str(tmp_path), role=role), "bikes", version, "zenml")

    production, canary, shadow = role_writer("2", "production"), role_writer("3", "canary"), role_writer("3", "shadow")
    for n in range(10):
        answered_by = canary if n % 5 == 0 else production
        answered_by.record(f"r{n}", records(2, n), INPUTS, [10.0, 20.0], None, 1.0)
        if n < 8:  # the last two copies never answered by the shadow
            shadow.record(f"r{n}", records(2, n), INPUTS, [13.0, 20.0], None, 1.0)
    truth = pd.DataFrame({"request_id": ["r1", "r2"], "row": [0, 0], "truth": [12.0, 12.0]})
    attach_labels(tmp_path, "bikes", truth, "truth")
    frame = read_predictions(tmp_path, "bikes").frame
    assert frame.groupby("role").size().to_dict() == {"canary": 4, "production": 16, "shadow": 16}
    compared = shadow_comparison(frame, "regression")
    assert compared["paired_rows"] == 16 and compared["unpaired_shadow_rows"] == 0
    assert compared["answered_versions"] == ["2", "3"] and compared["shadow_versions"] == ["3"]
    assert compared["mean_abs_difference"] == pytest.approx(1.5) and compared["max_abs_difference"] == 3.0
    assert compared["labelled_pairs"] == 2
    assert compared["production_metrics"]["mae"] == pytest.approx(2.0)  # 10 vs 12
    assert compared["shadow_metrics"]["mae"] == pytest.approx(1.0)  # 13 vs 12
    assert shadow_comparison(frame[frame["role"] != "shadow"], "regression") is None

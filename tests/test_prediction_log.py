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
from serving.prediction_log import LogSettings, PredictionLog, new_request_id, process_log
from serving.prediction_log_labels import attach_labels
from serving.prediction_log_reader import count_rejected, find_request, read_predictions, summary_line
from serving.prediction_log_retention import prune

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


def test_log_inputs_governs_every_field_a_client_sends(tmp_path):
    """`all` keeps the inputs and every other field; a list keeps exactly the fields it names (inputs and keys);
    `none` keeps none: an email sent beside the inputs never reaches the log unless it is asked for."""
    sent = [{**record, "email": f"person{i}@example.com"} for i, record in enumerate(records(2))]
    for name, inputs in (("all", "all"), ("some", ["temp", "order_id"]), ("none", "none")):
        writer(tmp_path / name, inputs=inputs).record("r", sent, INPUTS, [1, 2], None, 1.0)
        table = pd.DataFrame(sent)
        writer(tmp_path / f"{name}-batch", inputs=inputs, backend="batch").record_table(
            ["b0", "b1"], table, INPUTS, [1, 2], None, 1.0
        )
    for suffix in ("", "-batch"):
        every = read_predictions(tmp_path / f"all{suffix}", "bikes")
        some = read_predictions(tmp_path / f"some{suffix}", "bikes")
        none = read_predictions(tmp_path / f"none{suffix}", "bikes")
        assert every.input_columns == INPUTS and every.key_columns == ["order_id", "email"]
        assert some.input_columns == ["temp"] and some.key_columns == ["order_id"]
        assert list(some.frame["order_id"]) == [1000, 1001]
        assert none.input_columns == [] and none.key_columns == [] and list(none.frame["prediction"]) == [1, 2]
        for name in ("some", "none"):
            assert "example.com" not in "".join(p.read_text() for p in (tmp_path / f"{name}{suffix}").rglob("*.jsonl"))


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


PERSONAL_DATA = "Jane Doe, 4111 1111 1111 1111"


@pytest.mark.parametrize(
    ("payload", "problem", "named"),
    [
        (
            {"records": [{"dteday": "2012-01-01", "temp": PERSONAL_DATA, "season": "winter"}]},
            "wrong type",
            {"column": "temp"},
        ),
        ({"records": [{"dteday": PERSONAL_DATA, "temp": 0.5, "season": "winter"}]}, "not a time", {"column": "dteday"}),
        ({"records": [{"dteday": "2012-01-01", "temp": 0.5, "season": {"name": PERSONAL_DATA}}]}, "wrong type", {}),
        ({"records": [PERSONAL_DATA]}, "record not an object", {"record": 0}),
        ({"records": [{"name": PERSONAL_DATA}]}, "missing inputs", {}),
        ({"rows": [PERSONAL_DATA]}, "not a records object", {}),
        ({"records": []}, "no records", {}),
        ({"records": [{"temp": 1}] * 3}, "too many rows", {}),
    ],
)
def test_a_rejection_logs_its_status_and_kind_of_problem_never_the_value_sent(tmp_path, payload, problem, named):
    """The contract's own error messages quote what the client sent; the log keeps the kind of problem only."""
    from lifecycle.validation import FeatureSchema
    from serving.contract import RequestError, records_frame

    schema = FeatureSchema(
        target="cnt",
        task="regression",
        numeric_features=["temp"],
        categorical_features=["season"],
        time_columns=["dteday"],
        time_formats={"dteday": "%Y-%m-%d"},
    )
    with pytest.raises(RequestError) as raised:
        records_frame(payload, schema, max_rows=2)
    writer(tmp_path).reject(raised.value.status, str(raised.value))
    text = "".join(path.read_text() for path in tmp_path.rglob("rejected-*.jsonl"))
    assert "Jane" not in text and "4111" not in text
    line = json.loads(text)
    assert line["status"] == raised.value.status and line["problem"] == problem
    assert named.items() <= line.items()


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


def test_a_write_cut_short_by_a_full_disk_is_taken_back_raised_and_never_glues_the_next_row(tmp_path):
    """A file-size limit (what a full disk does to a write: part of it lands, then nothing) on a real writer in
    its own process: the request that did not fit raises LogWriteError and leaves no byte behind; once there is
    room again the next request's rows are whole lines."""
    script = textwrap.dedent(
        f"""
        import json, os, resource, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from serving.prediction_log import LogSettings, LogWriteError, PredictionLog
        log = PredictionLog(LogSettings(root={str(tmp_path)!r}), "bikes", "1", "zenml")
        log.record("before", [{{"temp": 1}}], ["temp"], [1.0], None, 0.1)
        path = next(p for p in __import__("pathlib").Path({str(tmp_path)!r}).rglob("predictions-*.jsonl"))
        size = path.stat().st_size
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, hard))  # room for part of the next line only
        outcome = {{}}
        try:
            log.record("cut", [{{"temp": 2}}, {{"temp": 3}}], ["temp"], [2.0, 3.0], None, 0.1)
        except LogWriteError as error:
            outcome["error"] = str(error)
        outcome["size_after_failure"] = path.stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        log.record("after", [{{"temp": 4}}], ["temp"], [4.0], None, 0.1)
        print(json.dumps({{**outcome, "size_before": size}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert "could not be written" in outcome.get("error", "") and "Fix:" in outcome["error"]
    assert outcome["size_after_failure"] == outcome["size_before"]
    table = read_predictions(tmp_path, "bikes")
    assert list(table.frame["request_id"]) == ["before", "after"] and table.broken_lines == 0


def test_readers_skip_torn_lines_say_how_many_and_cope_with_a_day_pruned_mid_read(tmp_path):
    from serving.prediction_log_reader import _files, _read_lines

    log = writer(tmp_path)
    log.record("a", records(2), INPUTS, [1.0, 2.0], None, 1.0)
    path = next((tmp_path / "bikes").rglob("predictions-*.jsonl"))
    with open(path, "a") as handle:  # a crash mid-write, then a later process's whole line
        handle.write('{"request_id":"a","row":2,"timestamp"\n')
    log.record("b", records(1), INPUTS, [3.0], None, 1.0)
    found = find_request(tmp_path, "a")
    assert list(found["row"]) == [0, 1] and found.attrs["broken_lines"] == 1
    assert read_predictions(tmp_path, "bikes").broken_lines == 1
    old = tmp_path / "bikes" / "2000-01-01"
    old.mkdir()
    (old / "predictions-zenml-1-x.jsonl").write_text('{"request_id": "old", "row": 0}\n')
    listed = _files(tmp_path, "bikes", "predictions")
    assert prune(tmp_path, "bikes", retention_days=30) == [old]  # between the listing and the reading
    rows, broken = _read_lines(listed)
    assert sorted({row["request_id"] for row in rows}) == ["a", "b"] and broken == 1


def test_log_files_are_this_users_only(tmp_path):
    from serving.prediction_log import register_smoke_test

    root = tmp_path / "log"
    log = writer(root)
    log.record("a", records(1), INPUTS, [1.0], None, 1.0)
    log.reject(400, "empty request body.")
    register_smoke_test(root, "bikes", "smoke-1")
    attach_labels(root, "bikes", pd.DataFrame({"request_id": ["a"], "cnt": [1]}), "cnt")
    files = [p for p in root.rglob("*") if p.is_file()]
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    assert len(files) == 4 and len(folders) == 4  # root, model, day, labels
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}
    assert {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o700"}


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


@pytest.mark.parametrize("sep", [",", ";"])
def test_join_keys_compare_as_the_text_the_client_sent_and_the_csv_wrote(tmp_path, sep):
    """`python run.py labels` with a CSV: a code with leading zeros joins only its own text; numbers sent as JSON
    numbers join the CSV's text, a large one exactly, even beside a row without it."""
    from lifecycle.config import DeploymentConfig
    from workflows.served import attach

    root = tmp_path / "log"
    codes = ["001042", 1042, 7.0, 12345678901234567, None]
    sent = [{"dteday": "2012-01-01", "temp": 0.1, "season": "w", "code": code} for code in codes]
    writer(root).record("r", sent, INPUTS, [1.0, 2.0, 3.0, 4.0, 5.0], None, 1.0)
    truth = tmp_path / "truth.csv"
    truth.write_text(f"code{sep}cnt\n001042{sep}10\n1042{sep}20\n7{sep}30\n12345678901234567{sep}40\n")
    report = attach("bikes", str(truth), "cnt", ["code"], DeploymentConfig(log={"folder": str(root)}))
    assert (report.matched_labels, report.labelled_rows, report.unmatched) == (4, 4, 0)
    labels = read_predictions(root, "bikes").frame["label"]
    assert labels[:4].tolist() == [10, 20, 30, 40] and pd.isna(labels[4])


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
    """A deploy registers its smoke test's id before sending it; a client's id that merely looks like one (the
    prefix is no mark) stays traffic."""
    from serving.prediction_log import register_smoke_test

    log = writer(tmp_path)
    smoke_id = "smoke-" + new_request_id()
    register_smoke_test(tmp_path, "bikes", smoke_id)
    log.record(smoke_id, records(2), INPUTS, [1.0, 2.0], None, 1.0)
    log.record("real", records(1), INPUTS, [3.0], None, 1.0)
    log.record("smoke-client-order-7", records(1), INPUTS, [4.0], None, 1.0)
    assert list(read_predictions(tmp_path, "bikes").frame["request_id"]) == ["real", "smoke-client-order-7"]
    assert len(read_predictions(tmp_path, "bikes", smoke_tests=True).frame) == 4
    assert len(find_request(tmp_path, smoke_id)) == 2
    report = attach_labels(tmp_path, "bikes", pd.DataFrame({"request_id": ["smoke-client-order-7"], "cnt": [9]}), "cnt")
    assert report.labelled_rows == 1


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

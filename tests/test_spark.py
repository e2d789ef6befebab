"""Scoring on a real Spark standalone cluster (one master, one worker on loopback, shared by this file's tests):
the cluster opens no REST or public port and leaves nothing running after `spark down`; the Spark path gives the
pandas path's predictions (difference 0 for regression, equal labels and probabilities for classification),
skips the same rows with the same reasons, and writes every answered row to the prediction log."""

from __future__ import annotations

import functools
import glob
import json
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from conftest import BIKE_DATA, DEMO_CONFIG, free_port_block, make_churn_table, run_cli

from lifecycle.config import DatasetConfig, SparkConfig, TrainingConfig, load_config
from lifecycle.data import read_table
from lifecycle.modeling import fit_model
from lifecycle.scoring import score_rows
from lifecycle.validation import validate_table
from serving.prediction_log import record_slice
from serving.processes import process_tree

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`python run.py spark up` with a config of its own (a free port); `spark down` at the end, checked."""
    from workflows.spark_cluster import spark_root

    folder = tmp_path_factory.mktemp("spark")
    config = folder / "spark.yaml"
    config.write_text(yaml.safe_dump({"cluster": {"port": free_port_block(), "workers": 1, "memory": "1g"}}))
    started = run_cli("spark", "up", "--spark-config", str(config), timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr[-3000:]
    record = json.loads((spark_root() / "cluster.json").read_text())
    yield {"config": config, "record": record, "output": started.stdout}
    family = {pid for root in [record["master_pid"], *record["worker_pids"]] for pid in process_tree(root)}
    stopped = run_cli("spark", "down")
    assert stopped.returncode == 0 and "Spark master" in stopped.stdout, stopped.stdout + stopped.stderr[-2000:]
    assert not [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert not (spark_root() / "cluster.json").exists()
    assert "nothing was running" in run_cli("spark", "down").stdout


@pytest.fixture(scope="module")
def spark(cluster):
    """A driver on the cluster (no UI), stopped with its JVM at the end; small splits, so a file is several tasks."""
    from lifecycle.spark_engine import spark_session, stop_session

    session = spark_session(
        cluster["record"]["master_url"], SparkConfig(max_partition_bytes="48k", arrow_batch_rows=1000)
    )
    yield session
    stop_session(session)


def test_the_cluster_listens_on_loopback_only_without_rest_or_ui_ports(cluster):
    record = cluster["record"]
    assert record["master_url"].startswith("spark://127.0.0.1:") and record["worker_hosts"] == ["127.0.0.2"]
    family = {pid for root in [record["master_pid"], *record["worker_pids"]] for pid in process_tree(root)}
    listening = [c for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.pid in family]
    assert listening and all(c.laddr.ip.removeprefix("::ffff:").startswith("127.") for c in listening), listening
    assert not {c.laddr.port for c in listening} & {6066, 4040, 8080, 8081}
    status = run_cli("spark", "status")
    assert record["master_url"] in status.stdout and "127.0.0.2" in status.stdout


def _scored_on_spark(spark, model, schema, source: Path, output: Path, log_root: Path, run_key: str):
    from lifecycle.spark_engine import score_on_spark

    settings = {"root": str(log_root), "enabled": True, "inputs": "all", "retention_days": 30, "role": "production"}
    log = functools.partial(record_slice, settings, "m", "1", "run-1")
    result = score_on_spark(spark, model, schema, str(source), str(output), run_key, log)
    scored = pd.read_parquet(result.output).sort_values("row").reset_index(drop=True)
    parts = sorted(glob.glob(f"{result.skipped_folder}/*.csv"))
    skipped = pd.concat([pd.read_csv(p) for p in parts]) if parts else pd.DataFrame({"row": [], "reason": []})
    return result, scored, skipped.sort_values("row").reset_index(drop=True)


def _logged(log_root: Path, run_key: str) -> pd.DataFrame:
    files = glob.glob(f"{log_root}/**/predictions-*.jsonl", recursive=True)
    frame = pd.concat([pd.read_json(f, lines=True) for f in files])
    return frame[frame["request_id"].str.startswith(f"batch-{run_key}-")]


@pytest.fixture(scope="module")
def churn_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("churn")
    make_churn_table(1500).to_csv(folder / "train.csv", index=False)
    dataset = DatasetConfig(path=str(folder / "train.csv"), target="churned", drop_columns=["customer_id"])
    clean, schema, _ = validate_table(read_table(folder / "train.csv"), dataset, "train")
    model, _ = fit_model(clean, schema, TrainingConfig(estimator={"name": "decision_tree"}, seed=3))
    return model, schema, folder


def test_classification_on_spark_equals_the_pandas_path_csv_and_a_parquet_folder(spark, churn_model, tmp_path):
    """A CSV in several splits, with a row the checks reject; and the same rows as a folder of two Parquet files:
    the same rows scored, the same labels and probabilities, the same rows skipped with the same reason, every
    scored row in the prediction log with the pandas path's request id."""
    model, schema, _ = churn_model
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16k")
    batch = make_churn_table(1500, seed=11).drop(columns=["churned"]).astype({"tenure_months": object})
    batch.loc[[5, 1400], "tenure_months"] = "soon"
    batch.loc[7, ["plan", "region", "tenure_months", "support_tickets"]] = None
    batch.to_csv(tmp_path / "batch.csv", index=False)
    expected, expected_skipped = score_rows(model, read_table(tmp_path / "batch.csv"), schema)
    assert len(expected_skipped) == 3

    result, scored, skipped = _scored_on_spark(
        spark, model, schema, tmp_path / "batch.csv", tmp_path / "out", tmp_path / "log", "csv00001"
    )
    assert result.splits > 1 and result.rows == 1500 and result.skipped_rows == 3
    assert scored["row"].tolist() == expected["row"].tolist()
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    assert np.array_equal(scored["probability"].to_numpy(), expected["probability"].to_numpy())
    assert skipped.to_dict("records") == expected_skipped.to_dict("records")
    assert scored["customer_id"].tolist() == batch.loc[expected["row"], "customer_id"].tolist()
    logged = _logged(tmp_path / "log", "csv00001").set_index("request_id")
    assert len(logged) == len(scored) and logged.index.is_unique
    assert logged.loc[scored["request_id"], "prediction"].tolist() == scored["prediction"].tolist()
    assert set(logged["backend"]) == {"batch"} and set(logged["server"]) == {"run-1"}

    folder = tmp_path / "parquet"
    folder.mkdir()
    clean = batch.drop(index=[5, 1400, 7]).astype({"tenure_months": float}).reset_index(drop=True)
    clean.iloc[:900].to_parquet(folder / "part-a.parquet")
    clean.iloc[900:].to_parquet(folder / "part-b.parquet")
    whole, none_skipped = score_rows(model, clean, schema)
    result, scored, skipped = _scored_on_spark(
        spark, model, schema, folder, tmp_path / "out-parquet", tmp_path / "log", "pq000001"
    )
    assert result.input_format == "parquet" and result.rows == len(clean) and skipped.empty and none_skipped.empty
    assert scored["row"].tolist() == whole["row"].tolist()
    assert scored["prediction"].tolist() == whole["prediction"].tolist()
    assert np.array_equal(scored["probability"].to_numpy(), whole["probability"].to_numpy())
    assert len(_logged(tmp_path / "log", "pq000001")) == len(clean)


def test_regression_on_spark_differs_from_the_pandas_path_by_exactly_zero(spark, bike_slice, tmp_path):
    """The demo's model (time columns, categories, numbers) on a slice of the bike data, in several splits."""
    spark.conf.set("spark.sql.files.maxPartitionBytes", "96k")
    config = load_config(DEMO_CONFIG)
    table = read_table(bike_slice)
    clean, schema, _ = validate_table(table, config.dataset, str(bike_slice))
    model, _ = fit_model(clean, schema, config.training)
    batch = table.drop(columns=[schema.target])
    batch.to_csv(tmp_path / "batch.csv", index=False)
    expected, expected_skipped = score_rows(model, read_table(tmp_path / "batch.csv"), schema)

    result, scored, skipped = _scored_on_spark(
        spark, model, schema, tmp_path / "batch.csv", tmp_path / "out", tmp_path / "log", "bike0001"
    )
    assert result.splits > 2 and result.scored_rows == len(expected)
    assert scored["row"].tolist() == expected["row"].tolist()
    assert np.max(np.abs(scored["prediction"].to_numpy() - expected["prediction"].to_numpy())) == 0
    assert len(skipped) == len(expected_skipped)


def test_bad_input_is_named_with_the_fix(spark, churn_model, tmp_path):
    from lifecycle.errors import DataError
    from lifecycle.spark_engine import score_on_spark

    model, schema, _ = churn_model
    with pytest.raises(DataError, match="not found. Fix"):
        score_on_spark(spark, model, schema, str(tmp_path / "missing.csv"), str(tmp_path / "out"), "x")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    make_churn_table(10).to_csv(mixed / "a.csv", index=False)
    make_churn_table(10).to_parquet(mixed / "b.parquet")
    with pytest.raises(DataError, match="mixes Parquet and CSV files. Fix"):
        score_on_spark(spark, model, schema, str(mixed), str(tmp_path / "out"), "x")
    (tmp_path / "utf16.csv").write_text("plan,region\nbasic,north\n", encoding="utf-16")
    with pytest.raises(DataError, match="Spark reads UTF-8 only. Fix"):
        score_on_spark(spark, model, schema, str(tmp_path / "utf16.csv"), str(tmp_path / "out"), "x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="is not a predictions folder a Spark run wrote. Fix"):
        score_on_spark(spark, model, schema, str(mixed / "a.csv"), str(tmp_path / "mine"), "x")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    done = run_cli("score", "--engine", "spark", "--input", str(mixed / "a.csv"), "--output", str(tmp_path / "o.csv"))
    assert done.returncode != 0 and "with --engine spark the predictions are a Parquet folder. Fix" in done.stderr


def test_drift_decision_from_whole_batch_counts_on_spark_equals_the_in_memory_path(spark, tmp_path):
    """A calm and a drifted batch of the bike data, both small enough for the in-memory path: the drift tests
    computed on Spark from counts give Evidently's scores (Jensen-Shannon exactly, Wasserstein within half a bin),
    the same drifted columns, the same batch check and the same retraining decision."""
    from lifecycle.batch_statistics import (
        JENSEN_SHANNON,
        SecondPass,
        drift_from_counts,
        seeded_sample,
        statistics_on_spark,
    )
    from lifecycle.config import MonitoringPolicy
    from lifecycle.monitoring import PerformanceSummary, check_batch, decide_retraining, run_drift_report

    config = load_config(DEMO_CONFIG)
    table = pd.read_csv(BIKE_DATA)
    dates = pd.to_datetime(table["dteday"])
    reference_rows = table[(dates >= "2011-03-01") & (dates < "2011-05-01")]
    reference, schema, _ = validate_table(reference_rows.reset_index(drop=True), config.dataset, "reference")
    policy = MonitoringPolicy()
    no_labels = PerformanceSummary(judged=False, reason="no labels")
    decisions = []
    batches = {
        "calm": reference_rows.sample(700, random_state=1),  # the reference's own months
        "drifted": table[(dates >= "2012-07-01") & (dates < "2012-09-01")],
    }
    for name, rows in batches.items():
        rows = rows.drop(columns=[schema.target])
        rows.to_csv(tmp_path / f"{name}.csv", index=False)
        batch = read_table(tmp_path / f"{name}.csv")
        prepared, expected_check = check_batch(batch, schema, reference)
        _, expected = run_drift_report(reference, prepared, schema, policy.min_rows_for_drift)

        check, columns, second, frame, kind, header = statistics_on_spark(
            spark, str(tmp_path / f"{name}.csv"), schema, reference, bins=1000
        )
        assert check == expected_check
        sample = seeded_sample(spark, frame, kind, header, schema, check.rows, 500, seed=0)
        _, on_sample = run_drift_report(reference, check_batch(sample, schema, reference)[0], schema, 50)
        second = SecondPass.from_dict(json.loads(json.dumps(second.as_dict())))  # as the step's artifact holds it
        drift = drift_from_counts(
            reference, schema, columns, second, check.rows, policy.min_rows_for_drift, on_sample, len(sample)
        )
        assert set(drift.columns) == set(expected.columns) and drift.drifted_columns == expected.drifted_columns
        for column, judged in drift.columns.items():
            assert judged.method == expected.columns[column].method or "sample" in judged.method, column
            tolerance = 1e-9 if judged.method == JENSEN_SHANNON else 0.01
            assert judged.score == pytest.approx(expected.columns[column].score, abs=tolerance), column
        decision = decide_retraining(check, drift, no_labels, policy)
        assert decision == decide_retraining(expected_check, expected, no_labels, policy)
        decisions.append(decision.retrain)
    assert decisions == [False, True]


def test_a_retraining_takes_a_seeded_sample_of_a_large_batch_drawn_on_the_cluster(spark, tmp_path):
    """What a retraining adds from a batch monitored on Spark is a seeded sample of about `retrain_sample_rows`
    of its rows, drawn on the cluster (the same rows every time), read as `read_table` reads the batch; only its
    labelled rows join the retraining window, and what it is made of says it was sampled."""
    from lifecycle.batch_statistics import batch_sample
    from lifecycle.windows import retraining_set

    table = make_churn_table(3000, seed=11)
    table.loc[table.index % 4 == 0, "churned"] = None  # a quarter without labels yet
    folder = tmp_path / "batch"
    folder.mkdir()
    table.iloc[:1800].to_parquet(folder / "part-1.parquet", index=False)
    table.iloc[1800:].to_parquet(folder / "part-2.parquet", index=False)
    schema = validate_table(make_churn_table(300), DatasetConfig(path="x.csv", target="churned"), "train")[1]

    sample, rows = batch_sample(spark, str(folder), schema, 600, seed=0)
    again, _ = batch_sample(spark, str(folder), schema, 600, seed=0)
    assert rows == 3000 and 400 < len(sample) < 800, len(sample)
    assert sample.equals(again)  # seeded: the same rows, in the same order
    assert set(sample["customer_id"]) < set(table["customer_id"])
    assert sample.dtypes.to_dict() == read_table(folder / "part-1.parquet").dtypes.to_dict()

    base = make_churn_table(500, seed=12)
    window, made_of = retraining_set(base, sample, DatasetConfig(path="x.csv", target="churned"), 56)
    assert made_of.rows_from_batch == int(sample["churned"].notna().sum()) < len(sample)
    assert len(window) == len(base) + made_of.rows_from_batch - made_of.duplicates_dropped
    made_of.batch_sample = (len(sample), rows)
    assert f"labelled rows from the batch (of a seeded sample of {len(sample)} of its 3000 rows)" in made_of.describe()

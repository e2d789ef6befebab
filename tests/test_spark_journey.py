"""The Spark path from the command line, as a user runs it: `spark up`, a model trained, `score --engine spark`
(a ZenML run that records the job's summary; predictions equal to `score` without Spark, every row in the
prediction log), `monitor --batch` of a folder (checks and drift on Spark, the report on a seeded sample, a
retraining that takes the batch's rows as a sample drawn on the cluster), and `spark down` leaving nothing
running."""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from conftest import free_port_block, make_churn_table, run_cli

from lifecycle.config import DeploymentConfig
from serving.processes import process_tree

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
MODEL = "churn_spark"


def test_score_and_monitor_on_spark_from_the_command_line(tmp_path, zenml_client):
    from lifecycle.names import SPARK_SCORING, SPARK_SCORING_PIPELINE
    from serving.prediction_log_reader import read_predictions
    from workflows.spark_cluster import spark_root

    config = tmp_path / "spark.yaml"
    config.write_text(yaml.safe_dump({"cluster": {"port": free_port_block(), "workers": 1}}))
    started = run_cli("spark", "up", "--spark-config", str(config), timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr[-3000:]
    record = json.loads((spark_root() / "cluster.json").read_text())
    try:
        make_churn_table(1500).to_csv(tmp_path / "train.csv", index=False)
        trained = run_cli("train", "--data", str(tmp_path / "train.csv"), "--target", "churned", "--model-name", MODEL)
        assert trained.returncode == 0, trained.stderr[-3000:]
        batch = make_churn_table(2000, seed=5).drop(columns=["churned"]).astype({"tenure_months": object})
        batch.loc[10, "tenure_months"] = "soon"
        batch.to_csv(tmp_path / "batch.csv", index=False)

        on_spark = run_cli(
            "score", "--engine", "spark", "--spark-config", str(config), "--model-name", MODEL,
            "--input", str(tmp_path / "batch.csv"), "--output", str(tmp_path / "spark-out"),
        )  # fmt: skip
        assert on_spark.returncode == 0, on_spark.stderr[-3000:]
        assert f"of 2000 rows on {record['master_url']}" in on_spark.stdout, on_spark.stdout
        in_process = run_cli(
            "score", "--engine", "pandas", "--model-name", MODEL,
            "--input", str(tmp_path / "batch.csv"), "--output", str(tmp_path / "pandas-out.parquet"),
        )  # fmt: skip
        assert in_process.returncode == 0, in_process.stderr[-3000:]
        spark_rows = pd.read_parquet(tmp_path / "spark-out").sort_values("row").reset_index(drop=True)
        pandas_rows = pd.read_parquet(tmp_path / "pandas-out.parquet")
        assert spark_rows["prediction"].tolist() == pandas_rows["prediction"].tolist()
        assert np.array_equal(spark_rows["probability"].to_numpy(), pandas_rows["probability"].to_numpy())
        assert spark_rows["customer_id"].tolist() == pandas_rows["customer_id"].tolist()
        assert f"scored {len(pandas_rows)} of 2000 rows" in on_spark.stdout
        skipped = pd.concat(pd.read_csv(p) for p in glob.glob(str(tmp_path / "spark-out.skipped" / "*.csv")))
        pandas_skipped = pd.read_csv(tmp_path / "pandas-out.skipped.csv")
        assert skipped.sort_values("row").to_dict("records") == pandas_skipped.to_dict("records")
        assert {"row": 10, "reason": "`tenure_months` is not a number"} in pandas_skipped.to_dict("records")

        run = zenml_client.list_pipeline_runs(pipeline_name=SPARK_SCORING_PIPELINE, size=1).items[0]
        assert run.model_version.model.name == MODEL and str(run.status) == "completed"
        summary = run.steps["score_on_spark_step"].outputs[SPARK_SCORING][0].load()
        assert summary["scored_rows"] == len(pandas_rows) and summary["output"] == str(tmp_path / "spark-out")
        logged = read_predictions(DeploymentConfig().log.root(), MODEL).frame
        assert set(spark_rows["request_id"]) <= set(logged["request_id"])

        folder = tmp_path / "batch-folder"
        folder.mkdir()
        make_churn_table(1200, seed=9).to_csv(folder / "part-1.csv", index=False)
        # A retraining asked for on a folder (which only Spark reads): the batch's rows come as a seeded sample drawn
        # on the cluster, not read whole in one process.
        monitored = run_cli("monitor", "--batch", str(folder), "--model-name", MODEL, "--retrain", "always")
        assert monitored.returncode == 0, monitored.stdout[-2000:] + monitored.stderr[-3000:]
        assert "on 1200 rows of" in monitored.stdout and "retraining requested on demand" in monitored.stdout
        assert "labelled rows from the batch (of a seeded sample of 1200 of its 1200 rows)" in monitored.stdout
        report = re.search(r"report: (\S+\.html)", monitored.stdout).group(1)
        assert "Evidently report on a seeded sample of 1200 of 1200 rows" in Path(report).read_text()
    finally:
        family = {pid for root in [record["master_pid"], *record["worker_pids"]] for pid in process_tree(root)}
        stopped = run_cli("spark", "down")
        assert stopped.returncode == 0, stopped.stderr[-2000:]
        assert not [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]

"""The production loop as a user runs it: serve, send rows, read the prediction log, attach labels that arrive
later (by key and by request id), monitor what was served (drift -> retraining), trace one prediction back."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml
from conftest import DEMO_CONFIG, run_cli

from lifecycle.config import DeploymentConfig

pytestmark = pytest.mark.integration
MODEL = "logged_bike"


@pytest.fixture(scope="module")
def served_and_sent(zenml_client, bike_slice, tmp_path_factory):
    """`logged_bike` trained and served on the default stack; 300 drifted rows sent with an order id each."""
    from serving.rollout import undeploy
    from serving.stack_backend import active_backend

    folder = tmp_path_factory.mktemp("loop")
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["dataset"]["path"], config["model"]["name"] = str(bike_slice), MODEL
    (folder / "training.yaml").write_text(yaml.safe_dump(config))
    trained = run_cli("train", "--config", str(folder / "training.yaml"))
    assert trained.returncode == 0, trained.stderr[-3000:]
    deployed = run_cli("deploy", "--model-name", MODEL, "--port", "8790")
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    table = pd.read_csv(bike_slice).tail(300).reset_index(drop=True)
    # A heat wave, humid air and a stronger wind than in any training month: drift on most features.
    batch = table.assign(
        temp=table["temp"] + 15, atemp=table["atemp"] + 15, hum=table["hum"] * 0.4, windspeed=table["windspeed"] * 3
    )
    batch.insert(0, "order_id", [f"order-{i}" for i in range(len(batch))])
    rows = folder / "rows.csv"
    batch.drop(columns=["cnt"]).to_csv(rows, index=False)
    try:
        sent = run_cli("predict", "--input", str(rows), "--model-name", MODEL, "--output", str(folder / "out.csv"))
        assert sent.returncode == 0, sent.stderr[-3000:]
        request_id = re.search(r"request id (\S+) ", sent.stderr).group(1)
        yield {"folder": folder, "batch": batch, "request_id": request_id}
    finally:
        undeploy(active_backend(), MODEL)


def test_predictions_lists_and_exports_every_answered_row(served_and_sent):
    listed = run_cli("predictions", "--model-name", MODEL)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert f"`{MODEL}`: 300 rows from 1 requests; versions v1; backends zenml" in listed.stdout, listed.stdout
    out = served_and_sent["folder"] / "log.parquet"
    exported = run_cli("predictions", "--model-name", MODEL, "--output", str(out))
    assert exported.returncode == 0 and "300 rows written" in exported.stdout
    frame = pd.read_parquet(out)
    assert set(frame["request_id"]) == {served_and_sent["request_id"]} and list(frame["row"]) == list(range(300))
    assert list(frame["order_id"]) == list(served_and_sent["batch"]["order_id"])
    answered = pd.read_csv(served_and_sent["folder"] / "out.csv")["prediction"]
    assert frame["prediction"].to_numpy() == pytest.approx(answered.to_numpy(), abs=1e-6)


def test_labels_join_by_key_and_by_request_id_then_monitor_served_retrains(served_and_sent):
    folder, batch, request_id = served_and_sent["folder"], served_and_sent["batch"], served_and_sent["request_id"]
    by_key = batch[["order_id", "cnt"]].head(200)
    by_key = pd.concat([by_key, pd.DataFrame({"order_id": ["order-0", "nobody"], "cnt": [1, 2]})])
    by_key.to_csv(folder / "truth_by_key.csv", index=False)
    attached = run_cli("labels", "--file", str(folder / "truth_by_key.csv"), "--key", "order_id", "--model-name", MODEL)
    assert attached.returncode == 0, attached.stderr[-3000:]
    assert "202 labels: 200 matched 200 logged rows; 1 unmatched; 1 duplicate(s)" in attached.stdout
    by_id = pd.DataFrame({"request_id": request_id, "row": range(200, 250), "cnt": batch["cnt"][200:250].to_numpy()})
    by_id.to_csv(folder / "truth_by_id.csv", index=False)
    attached = run_cli("labels", "--file", str(folder / "truth_by_id.csv"), "--model-name", MODEL)
    assert "50 labels: 50 matched 50 logged rows; 0 unmatched" in attached.stdout, attached.stdout
    from serving.prediction_log_reader import read_predictions

    log = read_predictions(DeploymentConfig().log.root(), MODEL).frame
    assert log["label"].notna().sum() == 250 and log.loc[0, "label"] == 1  # the file's last label for order-0 wins

    monitored = run_cli("monitor", "--served", "--model-name", MODEL)
    assert monitored.returncode == 0, monitored.stderr[-3000:]
    out = monitored.stdout
    assert f"served rows of `{MODEL}` (all .. now): 300, of which 250 labelled" in out
    assert re.search(r"\| 1 \| production \| 300 \| 250 \| mae \d", out), out
    assert "decision: RETRAIN" in out and "drift:" in out
    assert "Retraining on" in out and "Training run" in out


def test_trace_walks_a_request_back_to_its_data_and_commit(served_and_sent, zenml_client):
    traced = run_cli("trace", served_and_sent["request_id"])
    assert traced.returncode == 0, traced.stderr[-3000:]
    out = traced.stdout
    version = zenml_client.get_model_version(MODEL, "1")
    meta = version.run_metadata
    assert f"`{MODEL}` version 1 (id {version.id})" in out
    assert meta["data_fingerprint_sha256"] in out and meta["git_commit"] in out
    assert "training run" in out and "training_pipeline" in out
    server = re.search(r"answered by\s+zenml server (logged_bike-v1-\w{6})", out).group(1)
    assert re.search(rf"deployment\s+run .*zenml server {server} at http://127.0.0.1:\d+", out), out
    assert "promotion" in out and "300 row(s)" in out
    unknown = run_cli("trace", "no-such-request")
    assert unknown.returncode == 2 and "is not in the prediction log" in unknown.stderr
    assert json.loads(json.dumps(meta["data_source"]))  # the data file is named too
    assert str(meta["data_source"]) in out


def test_score_a_file_without_a_server(served_and_sent, zenml_client):
    """Batch scoring: a pipeline run scores the file with the production version; every scored row has a request
    id in the output and the log (backend `batch`); bad rows are listed with the reason, not dropped silently."""
    from lifecycle.names import BATCH_SCORING_PIPELINE
    from serving.prediction_log_reader import read_predictions

    folder = served_and_sent["folder"]
    rows = served_and_sent["batch"].drop(columns=["cnt"]).head(40).astype({"temp": object})
    rows.loc[3, "temp"] = "warm"
    rows.to_csv(folder / "to_score.csv", index=False)
    out = folder / "scored.parquet"
    done = run_cli(
        "score", "--input", str(folder / "to_score.csv"), "--output", str(out), "--model-name", MODEL, "--version", "1"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"`{MODEL}` version 1 scored 39 of 40 rows" in done.stdout, done.stdout
    assert "row 3: `temp` is not a number" in done.stdout
    scored = pd.read_parquet(out)
    assert len(scored) == 39 and scored["request_id"].is_unique and "order-3" not in set(scored["order_id"])
    skipped = pd.read_csv(folder / "scored.skipped.csv")
    assert skipped.to_dict("records") == [{"row": 3, "reason": "`temp` is not a number"}]
    logged = read_predictions(DeploymentConfig().log.root(), MODEL).frame
    batch_rows = logged[logged["request_id"].isin(scored["request_id"])]
    assert len(batch_rows) == 39 and set(batch_rows["backend"]) == {"batch"}
    assert batch_rows.set_index("request_id").loc[scored["request_id"], "prediction"].to_numpy() == pytest.approx(
        scored["prediction"].to_numpy()
    )
    run = zenml_client.list_pipeline_runs(pipeline_name=BATCH_SCORING_PIPELINE, sort_by="desc:created", size=1).items[0]
    assert run.model_version.model.name == MODEL and run.model_version.number == 1
    assert "scored_rows" in zenml_client.get_model_version(MODEL, "1").data_artifact_ids  # linked to the version

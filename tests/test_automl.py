"""The H2O AutoML challenger for real: a local H2O cluster (always stopped), one small AutoML search in the training
pipeline shared by the tests, its leader judged by the same gates and scored alike in-process and in batches.

Needs the `automl` extra and a JDK: `make test-automl`."""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from conftest import DEMO_CONFIG, activate_stack, free_port_block, make_churn_table, note, run_cli

from lifecycle.automl import h2o_cluster, require_automl, train_automl
from lifecycle.config import (
    DatasetConfig,
    DeploymentConfig,
    EstimatorConfig,
    H2OAutoMLConfig,
    SplitConfig,
    TrainingConfig,
    apply_overrides,
    load_config,
    load_deployment_config,
)
from lifecycle.errors import ConfigError
from lifecycle.metrics import score
from lifecycle.model_card import cards_folder
from lifecycle.mojo_model import MojoModel
from lifecycle.names import AUTOML_LEADERBOARD, AUTOML_MODEL, CONFIGURED_MODEL, MODEL, TRAINER_COMPARISON
from lifecycle.splitting import split_table
from lifecycle.validation import validate_table
from serving.contract import json_records
from serving.processes import still_running
from serving.rollout import live_endpoint, undeploy
from serving.stack_backend import backend_for
from stacks.manage import select, stack_specs, stacks_up
from workflows.runner import run_deployment, run_scoring, run_training

pytestmark = pytest.mark.automl
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Small and bounded: two model families, two folds, one minute at most.
SMALL = H2OAutoMLConfig(
    max_models=2,
    max_runtime_secs=60,
    exclude_algos=["DeepLearning", "StackedEnsemble", "XGBoost", "DRF"],
    nfolds=2,
    max_mem_size="1G",
)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_cluster_is_local_and_stopped_even_when_the_block_fails():
    with pytest.raises(RuntimeError, match="inside"), h2o_cluster(SMALL) as cluster:
        assert port_open(cluster.port)
        sockets = psutil.Process(cluster.pid).net_connections()
        listening = {c.laddr.ip.removeprefix("::ffff:") for c in sockets if c.status == "LISTEN"}
        assert listening == {"127.0.0.1"}, listening
        raise RuntimeError("a failure inside the block")
    assert gone(cluster.pid) and not port_open(cluster.port)


def test_cluster_is_stopped_when_the_process_is_terminated(tmp_path):
    script = (
        "import sys, time\n"
        "from lifecycle.automl import h2o_cluster\n"
        "from lifecycle.config import H2OAutoMLConfig\n"
        "with h2o_cluster(H2OAutoMLConfig(max_mem_size='1G')) as cluster:\n"
        "    print(cluster.pid, cluster.port, flush=True)\n"
        "    time.sleep(600)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        pid, port = (int(part) for part in process.stdout.readline().split())
        assert port_open(port)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 30
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert gone(pid) and not port_open(port)


def test_missing_extra_or_java_is_one_line_naming_the_fix():
    hidden = "import sys; sys.modules['h2o'] = None\nfrom lifecycle.automl import require_automl\nrequire_automl()"
    result = subprocess.run([sys.executable, "-c", hidden], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert "the h2o_automl challenger needs the `h2o` package" in result.stderr and "[automl]" in result.stderr
    no_java = {**os.environ, "PATH": str(Path(sys.executable).parent), "JAVA_HOME": ""}
    check = "from lifecycle.automl import require_automl\nrequire_automl()"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=PROJECT_ROOT, capture_output=True, text=True, env=no_java
    )
    assert "needs a Java 8-17 JDK and `java` was not found" in result.stderr
    require_automl()  # here both are present


@pytest.fixture(scope="module")
def challenged(zenml_client, bike_slice):
    """One training run with the challenger on the bike slice; the configured estimator is a stump, so the AutoML
    leader is the candidate and goes through the gates."""
    config = apply_overrides(
        load_config(DEMO_CONFIG), model_name="bike_automl", enable_cache=False, challengers=["h2o_automl"]
    )
    stump = EstimatorConfig(name="decision_tree", params={"max_depth": 2})
    training = config.training.model_copy(update={"estimator": stump, "h2o_automl": SMALL})
    config = config.model_copy(
        update={"dataset": config.dataset.model_copy(update={"path": str(bike_slice)}), "training": training}
    )
    stacks_up(select([], stack_specs(), for_registration=True))
    activate_stack("full")  # MLflow records it too, and holds the twin its server loads
    try:
        return config, run_training(config)
    finally:
        zenml_client.activate_stack("default")


def test_leader_is_the_candidate_judged_by_the_gates(challenged, zenml_client):
    config, outcome = challenged
    version = zenml_client.get_model_version("bike_automl", outcome.model_version)
    model = version.get_model_artifact(MODEL).load()
    assert isinstance(model, MojoModel)
    metadata = version.run_metadata
    assert metadata["trainer"] == "h2o_automl" and metadata["estimator"].startswith("h2o_automl:")
    comparison = outcome.run.steps["choose_model"].outputs[TRAINER_COMPARISON][0].load()
    assert comparison.chosen == "h2o_automl" and [f.trainer for f in comparison.trainers] == [
        "configured",
        "h2o_automl",
    ]
    assert comparison.figures("h2o_automl").metrics["rmse"] < comparison.figures("configured").metrics["rmse"]
    # The gates judged the served object: its own predictions on the test rows give the report's metrics.
    test_set = outcome.run.steps["split_data"].outputs["test_set"][0].load()
    again = score("regression", test_set["cnt"], model.predict(test_set), None)
    assert again == pytest.approx(outcome.evaluation.metrics, rel=1e-12)
    assert comparison.figures("h2o_automl").metrics == pytest.approx(outcome.evaluation.metrics, rel=1e-12)
    gates = {gate.name: gate for gate in outcome.decision.gates}
    assert gates["naive_baseline"].passed is True and outcome.decision.promoted
    leaderboard = version.get_artifact(AUTOML_LEADERBOARD).load()
    assert 1 <= len(leaderboard) <= 2 and model.model_id == leaderboard["model_id"].iloc[0]
    assert metadata["automl_leaderboard"][0]["model_id"] == model.model_id
    assert version.get_model_artifact(CONFIGURED_MODEL) is not None and version.get_model_artifact(AUTOML_MODEL)
    card = (cards_folder("bike_automl") / f"v{outcome.model_version}.md").read_text()
    assert "## Trainers compared" in card and model.model_id in card and "h2o_automl:" in card


def test_predictions_are_identical_in_process_pickled_and_in_batches(challenged, zenml_client, tmp_path):
    config, outcome = challenged
    model = zenml_client.get_model_version("bike_automl", outcome.model_version).get_model_artifact(MODEL).load()
    test_set = outcome.run.steps["split_data"].outputs["test_set"][0].load()
    whole = model.predict(test_set)
    one_by_one = np.concatenate([model.predict(test_set.iloc[[row]]) for row in range(50)])
    assert np.array_equal(whole[:50], one_by_one)
    copy = pickle.loads(pickle.dumps(model))
    assert copy._scorer is None  # the JVM is not pickled; the copy starts its own
    assert np.array_equal(copy.predict(test_set), whole)
    copy.stop_scorer()

    batch = tmp_path / "batch.csv"
    raw = pd.read_csv(config.dataset.path)
    raw.to_csv(batch, index=False)
    scored = run_scoring("bike_automl", str(batch), outcome.model_version, load_deployment_config()).scored
    assert np.array_equal(scored["prediction"].to_numpy(dtype=float), model.predict(raw.iloc[scored["row"]]))


def test_classification_leader_gives_labels_and_probabilities():
    table = make_churn_table(rows=800)
    config = DatasetConfig(path="churn.csv", target="churned", task="classification")
    clean, schema, _ = validate_table(table, config)
    train, test = split_table(clean, schema, SplitConfig(), seed=1)
    model = train_automl(train, schema, TrainingConfig(h2o_automl=SMALL), "f1_macro").model
    labels, probabilities = model.predict(test), model.predict_proba(test)
    assert list(model.classes_) == ["no", "yes"] and set(labels) <= {"no", "yes"}
    assert probabilities.shape == (len(test), 2) and np.allclose(probabilities.sum(axis=1), 1.0)
    odd = test.head(3).copy()
    odd["plan"] = ["platinum", None, "basic"]  # unseen and missing categories
    odd["tenure_months"] = np.nan
    assert len(model.predict(odd)) == 3
    with pytest.raises(ValueError, match="columns are missing"):
        model.predict(test.drop(columns=["plan"]))
    model.stop_scorer()


def test_config_rejects_an_unknown_challenger():
    with pytest.raises(ConfigError, match="challengers"):
        apply_overrides(load_config(DEMO_CONFIG), challengers=["autosklearn"])


@pytest.mark.parametrize("backend_name", ["zenml", "bentoml", "mlflow"])
def test_served_answers_equal_in_process_on_every_backend(challenged, zenml_client, backend_name):
    config, outcome = challenged
    version = zenml_client.get_model_version("bike_automl", outcome.model_version)
    model = version.get_model_artifact(MODEL).load()
    test_set = outcome.run.steps["split_data"].outputs["test_set"][0].load().head(200)
    schema = version.get_artifact("feature_schema").load()
    expected = model.predict(test_set).tolist()
    stack = {"zenml": "local", "bentoml": "bentoml", "mlflow": "mlflow"}[backend_name]
    backend = backend_for(activate_stack(stack))
    deployment = DeploymentConfig(
        port=free_port_block(), drain_seconds=1.0, smoke_rows=20, front_door={"port": free_port_block()}
    )
    try:
        record = run_deployment("bike_automl", deployment)
        assert record["model_version"] == outcome.model_version
        endpoint = live_endpoint(backend, "bike_automl")
        records = json_records(test_set, schema)
        predictions, _ = backend.predict(endpoint, records, timeout=120)
        assert predictions == expected
        one, _ = backend.predict(endpoint, records[7:8], timeout=60)
        assert one == [expected[7]]
        note(f"H2O leader served on {backend_name}: {len(records) + 1} rows equal to in-process")
    finally:
        stopped = undeploy(backend, "bike_automl")
        assert all(not still_running(e.pid) for e in stopped)
        zenml_client.activate_stack("default")


def test_cli_trains_both_on_an_unseen_csv_serves_the_winner_and_predicts(zenml_client, churn_csv, tmp_path):
    config = tmp_path / "churn.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"name": "churn_automl"},
                "dataset": {"path": str(churn_csv), "target": "churned", "task": "classification"},
                "training": {"h2o_automl": SMALL.model_dump(exclude={"scorer_jvm_options"})},
            }
        )
    )
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text(
        yaml.safe_dump({"port": free_port_block(), "drain_seconds": 1.0, "front_door": {"port": free_port_block()}})
    )
    trained = run_cli("train", "--config", str(config), "--challenger", "h2o_automl", "--no-redeploy")
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    version = zenml_client.get_model_version("churn_automl", "production")
    chosen = version.run_metadata["trainer"]
    assert chosen in {"configured", "h2o_automl"} and "trainer_comparison" in version.run_metadata
    rows = tmp_path / "rows.csv"
    pd.read_csv(churn_csv).drop(columns=["churned"]).head(5).to_csv(rows, index=False)
    try:
        deployed = run_cli("deploy", "--config", str(config), "--deployment-config", str(deployment))
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        predicted = run_cli("predict", "--model-name", "churn_automl", "--input", str(rows))
        assert predicted.returncode == 0, predicted.stdout[-3000:] + predicted.stderr[-3000:]
        assert predicted.stdout.count("yes") + predicted.stdout.count("no") >= 5, predicted.stdout
        note(f"CLI journey with the challenger on an unseen CSV: {chosen} won, served and answered 5 rows")
    finally:
        run_cli("undeploy", "--model-name", "churn_automl")

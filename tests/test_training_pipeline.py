"""The training pipeline run for real, in the session's temporary ZenML store."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from conftest import DEMO_CONFIG, run_cli

from lifecycle.config import EstimatorConfig, apply_overrides, load_config
from lifecycle.errors import DataError, PipelineFailed
from lifecycle.names import MODEL
from workflows.runner import production_version, run_training

pytestmark = pytest.mark.integration
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bike_config(path, model_name: str, **training):
    config = apply_overrides(load_config(DEMO_CONFIG), model_name=model_name, enable_cache=False)
    dataset = config.dataset.model_copy(update={"path": str(path)})
    config = config.model_copy(update={"dataset": dataset})
    if training:
        config = config.model_copy(update={"training": config.training.model_copy(update=training)})
    return config


@pytest.fixture(scope="module")
def promoted_bike(zenml_client, bike_slice):
    """The first run of a fresh model: it must become production."""
    return run_training(bike_config(bike_slice, "bike_it"))


def test_first_run_promotes_and_records_everything(promoted_bike, zenml_client, bike_slice):
    outcome = promoted_bike
    assert outcome.decision.promoted and "first production model" in outcome.decision.reason
    assert outcome.production_version == outcome.model_version
    version = zenml_client.get_model_version("bike_it", "production")
    metadata = version.run_metadata
    assert metadata["metrics"]["rmse"] == pytest.approx(outcome.evaluation.metrics["rmse"])
    assert metadata["metrics"]["rmse"] < metadata["baseline_metrics"]["rmse"]
    assert len(metadata["data_fingerprint_sha256"]) == 64
    assert metadata["seed"] == 42 and metadata["git_commit"]
    assert metadata["promotion"]["promoted"] is True
    assert {"dteday", "hr", "temp", "season"} <= set(metadata["model_inputs"])
    assert not {"casual", "registered"} & set(metadata["model_inputs"])
    model = version.get_model_artifact(MODEL).load()
    assert hasattr(model, "predict")
    segments = {(s.column, s.value) for s in outcome.evaluation.segments}
    assert ("workingday", "Yes") in segments and ("workingday", "No") in segments


def test_worse_model_does_not_replace_production(promoted_bike, bike_slice):
    stump = EstimatorConfig(name="decision_tree", params={"max_depth": 1})
    outcome = run_training(bike_config(bike_slice, "bike_it", estimator=stump))
    assert not outcome.decision.promoted
    assert "does not beat" in outcome.decision.reason
    assert outcome.production_version == promoted_bike.model_version
    # Production was re-scored on the new run's test set: the same rows, so the same score.
    assert outcome.decision.production_score == pytest.approx(promoted_bike.evaluation.metrics["rmse"])


def test_same_inputs_give_identical_metrics(promoted_bike, bike_slice):
    again = run_training(bike_config(bike_slice, "bike_it"))
    assert again.evaluation.metrics == promoted_bike.evaluation.metrics
    assert not again.decision.promoted and "production kept" in again.decision.reason


def test_cache_follows_the_data_content(zenml_client, bike_slice, tmp_path):
    path = tmp_path / "bike_cache.csv"
    table = pd.read_csv(bike_slice)
    table.to_csv(path, index=False)
    config = bike_config(path, "bike_cache").model_copy(update={"enable_cache": True})
    run_training(config)
    cached = run_training(config)
    assert cached.run.steps["train_model"].status.value == "cached"
    table.assign(cnt=table["cnt"] + 1).to_csv(path, index=False)
    changed = run_training(config)
    assert changed.run.steps["ingest_data"].status.value == "completed"
    assert changed.run.steps["train_model"].status.value == "completed"


def test_classification_on_unseen_table_beats_baseline(zenml_client, churn_csv):
    config = apply_overrides(
        load_config(DEMO_CONFIG),
        data=str(churn_csv),
        target="churned",
        task="classification",
        segment_columns=["plan"],
        enable_cache=False,
    )
    outcome = run_training(config)
    assert outcome.model_name == "churn"
    metrics, baseline = outcome.evaluation.metrics, outcome.evaluation.baseline_metrics
    assert metrics["f1_macro"] > baseline["f1_macro"] and metrics["roc_auc"] > 0.7
    assert outcome.decision.promoted and outcome.production_version == outcome.model_version


def _bad_files(directory, bike_slice):
    table = pd.read_csv(bike_slice)
    files = {}
    files["missing target"] = directory / "no_target.csv"
    table.drop(columns="cnt").to_csv(files["missing target"], index=False)
    files["text in numeric column"] = directory / "text_temp.csv"
    table.astype({"temp": object}).assign(temp=lambda t: t["temp"].where(t.index % 97 != 0, "warm")).to_csv(
        files["text in numeric column"], index=False
    )
    files["empty file"] = directory / "empty.csv"
    files["empty file"].write_text("")
    files["file not found"] = directory / "does_not_exist.csv"
    return files


@pytest.mark.parametrize("case", ["missing target", "text in numeric column", "empty file", "file not found"])
def test_bad_data_fails_clearly_and_leaves_production_alone(promoted_bike, bike_slice, tmp_path, case):
    path = _bad_files(tmp_path, bike_slice)[case]
    before = production_version("bike_it")
    with pytest.raises((DataError, PipelineFailed)):
        run_training(bike_config(path, "bike_it"))
    assert production_version("bike_it") == before == promoted_bike.model_version


@pytest.mark.parametrize("case", ["missing target", "text in numeric column", "empty file", "file not found"])
def test_cli_reports_bad_data_in_one_paragraph(promoted_bike, bike_slice, tmp_path, case):
    path = _bad_files(tmp_path, bike_slice)[case]
    before = production_version("bike_it")
    result = run_cli("train", "--data", str(path), "--target", "cnt", "--model-name", "bike_it")
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in result.stderr
    assert str(path) in message and "Fix" in message
    assert production_version("bike_it") == before


def test_cli_trains_a_classifier_on_a_new_csv(zenml_client, data_dir):
    from conftest import make_churn_table

    path = data_dir / "subscribers.csv"
    make_churn_table(rows=500, seed=3).to_csv(path, index=False)
    result = run_cli("train", "--data", str(path), "--target", "churned", "--task", "classification")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PROMOTED to production" in result.stdout and "model `subscribers` version 1" in result.stdout
    assert production_version("subscribers") == "1"

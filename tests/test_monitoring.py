"""Monitoring: batch checks, drift, the retrain policy, the monitoring pipeline and a short replay."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_CONFIG, free_port_block, run_cli

from lifecycle.config import (
    DatasetConfig,
    DeploymentConfig,
    MonitoringConfig,
    MonitoringPolicy,
    ReplayConfig,
    load_config,
)
from lifecycle.monitoring import (
    BatchCheck,
    DriftSummary,
    PerformanceSummary,
    check_batch,
    decide_retraining,
    predict_rows,
    run_drift_report,
)
from lifecycle.validation import validate_table
from lifecycle.windows import newest_window, time_index

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bike(bike_slice):
    """The bike slice validated with the demo config: (raw table, clean table, schema)."""
    config = load_config(DEMO_CONFIG)
    raw = pd.read_csv(bike_slice)
    clean, schema, _ = validate_table(raw, config.dataset.model_copy(update={"path": str(bike_slice)}))
    return raw, clean, schema


@pytest.fixture(scope="module")
def bike_model(bike):
    from lifecycle.config import TrainingConfig
    from lifecycle.modeling import fit_model

    _, clean, schema = bike
    return fit_model(clean, schema, TrainingConfig(estimator={"name": "decision_tree", "params": {"max_depth": 6}}))[0]


def test_drift_found_on_a_shifted_batch_and_not_on_a_reference_sample(bike):
    _, clean, schema = bike
    reference = clean.sample(frac=0.6, random_state=0)
    same = clean.drop(reference.index).sample(400, random_state=1)
    shifted = same.assign(
        temp=same["temp"] + 15,
        atemp=same["atemp"] + 15,
        hum=same["hum"] * 0.4,
        windspeed=same["windspeed"] * 3,
        weathersit="Heavy Rain",
        season="winter",
    )
    _, calm = run_drift_report(reference, same, schema, min_rows=50)
    html, drifted = run_drift_report(reference, shifted, schema, min_rows=50)
    # Dataset-level drift (the share of drifted columns, as the policy judges it) is absent on a fair sample.
    assert calm.judged and calm.share < MonitoringPolicy().drift_share_threshold
    assert drifted.share >= 0.5 and {"temp", "hum", "weathersit"} <= set(drifted.drifted_columns)
    assert set(drifted.columns) == set(schema.features)  # time columns are not judged
    assert "<html" in html.lower() and len(html) > 10_000


def test_small_batches_are_not_judged_for_drift(bike):
    _, clean, schema = bike
    _, summary = run_drift_report(clean, clean.head(10), schema, min_rows=50)
    assert not summary.judged and "10 rows" in summary.reason


def test_retrain_policy():
    policy = MonitoringPolicy(drift_share_threshold=0.5, degradation_threshold=0.2, min_rows_for_drift=50)
    batch = BatchCheck(rows=500)
    calm = DriftSummary(judged=True, share=0.2, drifted_columns=["temp"])
    stormy = DriftSummary(judged=True, share=0.6, drifted_columns=["temp", "hum", "season"])
    fine = PerformanceSummary(judged=True, metric="rmse", degradation=0.05)
    worse = PerformanceSummary(judged=True, metric="rmse", degradation=0.35)
    unlabelled = PerformanceSummary(judged=False, reason="no labels")

    stay = decide_retraining(batch, calm, fine, policy)
    assert not stay.retrain and "no trigger" in stay.reasons[0] and "20% < 50%" in stay.reasons[0]
    assert decide_retraining(batch, stormy, fine, policy).reasons[0].startswith("drift: 60%")
    assert "rmse up 35%" in decide_retraining(batch, calm, worse, policy).reasons[0]
    assert len(decide_retraining(batch, stormy, worse, policy).reasons) == 2
    assert not decide_retraining(BatchCheck(rows=20), stormy, unlabelled, policy).retrain  # too small to judge
    assert decide_retraining(batch, calm, unlabelled, policy, on_demand=True).retrain
    f1 = PerformanceSummary(judged=True, metric="f1_macro", degradation=0.3)
    assert "f1_macro down 30%" in decide_retraining(batch, calm, f1, policy).reasons[0]


def test_bad_batch_is_reported_not_fatal(bike, bike_model):
    _, clean, schema = bike
    batch = clean.sample(40, random_state=3).reset_index(drop=True).astype({"temp": object})
    batch.loc[0:4, "temp"] = "hot"
    batch.loc[5, "weathersit"] = "Tornado"
    batch["windspeed"] = np.nan
    batch.loc[6, "hum"] = 1e6
    batch.loc[7:9, ["temp", "atemp", "hum", "season", "holiday", "weekday", "workingday", "weathersit"]] = None
    prepared, check = check_batch(batch, schema, clean)
    assert check.non_numeric_values == {"temp": 5}
    assert check.unseen_categories == {"weathersit": ["Tornado"]}
    assert check.all_null_columns == ["windspeed"]
    assert check.out_of_range["hum"] == 1
    assert check.predictable_rows == 37 and "3 of 40 rows" in check.predictions_note
    predictions = predict_rows(bike_model, prepared, schema)
    assert predictions["prediction"].notna().sum() == 37 and predictions.loc[7:9, "prediction"].isna().all()
    assert any("Tornado" in line for line in check.problems)


def test_missing_columns_skip_predictions_with_the_reason(bike, bike_model):
    _, clean, schema = bike
    prepared, check = check_batch(clean.head(30).drop(columns=["temp", "season"]), schema, clean)
    assert check.missing_columns == ["temp", "season"]
    assert "predictions skipped" in check.predictions_note and "temp, season" in check.predictions_note
    assert predict_rows(bike_model, prepared, schema)["prediction"].isna().all()


def test_empty_batch_is_reported(bike):
    _, clean, schema = bike
    _, check = check_batch(clean.head(0), schema, clean)
    assert check.rows == 0 and "empty batch" in check.problems[0]


def test_retraining_set_drops_batch_rows_already_in_the_dataset_and_says_so():
    from lifecycle.config import DatasetConfig, TimeColumn
    from lifecycle.windows import retraining_set

    base = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=10).astype(str), "x": range(10), "y": range(10)})
    repeated = base.tail(3)  # already in the dataset
    new = pd.DataFrame({"day": ["2024-01-11", "2024-01-12"], "x": [10, 11], "y": [10.0, None]})  # one unlabelled
    dataset = DatasetConfig(path="data.csv", target="y", time_columns=[TimeColumn(column="day")])
    table, made_of = retraining_set(base, pd.concat([repeated, new]), dataset, window_days=5)
    assert made_of.duplicates_dropped == 3 and made_of.rows_from_batch == 1 and made_of.rows_from_dataset == 4
    assert len(table) == 5 and not table.duplicated().any() and table["day"].max() == "2024-01-11"
    assert made_of.describe() == (
        "newest 5 days; 4 rows from the dataset, 1 labelled rows from the batch, 3 exact duplicate rows dropped"
    )
    everything, without_time = retraining_set(base, repeated, DatasetConfig(path="data.csv", target="y"), 5)
    assert len(everything) == 10 and without_time.window_days is None and without_time.duplicates_dropped == 3


def test_time_index_and_windows():
    table = pd.DataFrame({"day": ["2024-01-02", "2024-01-01", "2024-01-03"], "hr": ["1pm", "11pm", "12am"]})
    table = table.astype("category")  # as read_table gives repeating text
    dataset = DatasetConfig(path="x", target="y", time_columns=[{"column": "day"}, {"column": "hr", "format": "%I%p"}])
    times = time_index(table, dataset)
    assert list(times) == [
        pd.Timestamp("2024-01-02 13:00"),
        pd.Timestamp("2024-01-01 23:00"),
        pd.Timestamp("2024-01-03 00:00"),
    ]
    window = newest_window(table, times, pd.Timestamp("2024-01-03 00:00"), days=1)
    assert list(window["hr"]) == ["1pm"]


# --- the monitoring pipeline and the replay, in the session's ZenML store -------------------------------------


@pytest.fixture(scope="module")
def production_bike(zenml_client, bike_slice):
    from workflows.runner import run_training

    config = load_config(DEMO_CONFIG)
    config = config.model_copy(
        update={
            "dataset": config.dataset.model_copy(update={"path": str(bike_slice)}),
            "model": config.model.model_copy(update={"name": "monitored_bike"}),
        }
    )
    outcome = run_training(config)
    assert outcome.decision.promoted
    return config


@pytest.mark.integration
def test_monitoring_pipeline_on_a_bad_batch(production_bike, bike_slice, tmp_path):
    from workflows.runner import run_monitoring

    batch = pd.read_csv(bike_slice).tail(200).astype({"temp": object})
    batch.loc[batch.index[:3], "temp"] = "n/a-ish"
    batch = batch.drop(columns=["hum"])
    path = tmp_path / "bad_batch.csv"
    batch.to_csv(path, index=False)
    outcome = run_monitoring("monitored_bike", str(path), MonitoringConfig())
    summary = outcome.summary
    assert summary.batch.missing_columns == ["hum"] and summary.batch.non_numeric_values == {"temp": 3}
    assert not summary.performance.judged and "no labelled rows" in summary.performance.reason
    assert summary.drift.judged and "hum" not in summary.drift.columns
    assert outcome.report_path.is_relative_to(os.environ["MLOPS_REPORTS_DIR"])
    assert outcome.report_path.name.startswith(f"monitored_bike-v{summary.model_version}-bad_batch-")
    page = outcome.report_path.read_text()
    assert "<html" in page.lower()
    opening = page[page.lower().index("<body") :][:1500]  # the page opens with what was checked and the decision
    assert "Monitoring `monitored_bike` version" in opening and f"({summary.batch.rows} rows)" in opening
    assert "decision: " in opening
    assert json.loads(outcome.summary_path.read_text())["batch"]["missing_columns"] == ["hum"]
    step = outcome.run.steps["summarize_monitoring"]
    assert step.run_metadata["monitoring"]["batch"]["missing_columns"] == ["hum"]
    report_artifact = outcome.run.steps["drift_report"].outputs["drift_report"][0]
    assert "HTMLString" in str(report_artifact.data_type)  # shown as HTML in the ZenML dashboard


@pytest.mark.integration
def test_monitoring_pipeline_on_an_empty_batch(production_bike, tmp_path):
    from workflows.runner import run_monitoring

    path = tmp_path / "empty.csv"
    path.write_text("dteday,hr,temp,cnt\n")
    outcome = run_monitoring("monitored_bike", str(path), MonitoringConfig(reports_dir=str(tmp_path / "r")))
    assert outcome.summary.batch.rows == 0 and not outcome.summary.decision.retrain
    assert "empty batch" in outcome.summary.batch.problems[0]


@pytest.mark.integration
@pytest.mark.e2e
def test_short_replay_retrains_when_drift_is_injected(zenml_client, bike_slice, tmp_path):
    from serving.rollout import live_endpoint, undeploy
    from serving.stack_backend import active_backend
    from workflows.replay import plot_errors, replay, timeline_table

    table = pd.read_csv(bike_slice)
    late = pd.to_datetime(table["dteday"]) >= "2011-06-12"
    # From mid-June: a heat wave and a demand surge the first model never saw.
    table.loc[late, ["temp", "atemp"]] += 12
    table.loc[late, "cnt"] = (table.loc[late, "cnt"] * 1.8).round()
    path = tmp_path / "drifting_bike.csv"
    table.to_csv(path, index=False)
    config = load_config(DEMO_CONFIG)
    config = config.model_copy(update={"dataset": config.dataset.model_copy(update={"path": str(path)})})
    monitoring = MonitoringConfig(
        reports_dir=str(tmp_path / "reports"),
        # Four periods: labels arrive one period late, so the heat wave's labels reach a retrained model only in
        # the third period, and its benefit shows in the fourth.
        replay=ReplayConfig(model_name="replay_test", initial_training_days=28, period_days=14, max_periods=4),
    )
    lines: list[str] = []
    try:
        result = replay(config, monitoring, progress=lines.append, deployment=DeploymentConfig(port=free_port_block()))
    finally:
        served = live_endpoint(active_backend(), "replay_test")
        undeploy(active_backend(), "replay_test")
    assert len(result.periods) == 4 and len(lines) == 6  # first model, its server, one line a period
    assert any(p.retrained for p in result.periods)
    # Every promotion was redeployed: the server always answers with the version in production.
    assert all(p.version_served == p.version_in_production for p in result.periods)
    assert served is not None and served.model_version == result.periods[-1].version_in_production
    assert "| version served | rows served / logged |" in timeline_table(result)
    # Production traffic: every period's rows went through the server and all of them are in the prediction log.
    assert all(p.requests_served and p.rows_served == p.rows_logged == p.rows for p in result.periods)
    assert all(f"served {p.rows} rows" in line for p, line in zip(result.periods, lines[2:], strict=True))
    assert all(p.error_in_production is not None and p.error_never_retrained is not None for p in result.periods)
    # Once the heat wave's labels have arrived (one period late) and a model trained on them serves, it beats the
    # model that was never retrained.
    last = result.periods[-1]
    assert last.retrained or last.promoted or last.version_served != result.periods[0].version_served, lines
    assert last.error_in_production < last.error_never_retrained, lines
    assert plot_errors(result, tmp_path / "plot.png").stat().st_size > 10_000


@pytest.mark.integration
def test_cli_monitor_reports_and_retrains(production_bike, bike_slice, tmp_path):
    batch = pd.read_csv(bike_slice).tail(300)
    # Labels far from what the model learnt (degradation), except 100 rows copied as they are in the dataset.
    batch = batch.assign(cnt=[*batch["cnt"][:100], *(batch["cnt"][100:] * 3)])
    path = tmp_path / "labelled_batch.csv"
    batch.to_csv(path, index=False)
    from serving.rollout import live_endpoint, undeploy
    from serving.stack_backend import active_backend
    from workflows.runner import run_deployment

    before = run_deployment("monitored_bike", DeploymentConfig(port=free_port_block()))
    try:
        result = run_cli(
            "monitor", "--batch", str(path), "--model-name", "monitored_bike", "--config", str(DEMO_CONFIG)
        )
        served = live_endpoint(active_backend(), "monitored_bike")
    finally:
        undeploy(active_backend(), "monitored_bike")
    assert result.returncode == 0, result.stderr[-3000:]
    if "PROMOTED to production" in result.stdout:  # the promoted version replaced the served one
        assert "now served: version" in result.stdout and before["name"] in result.stdout
        assert served.model_version != before["model_version"]
    else:
        assert "keeps serving" in result.stdout and served.name == before["name"]
    assert "decision: RETRAIN" in result.stdout and "performance: rmse" in result.stdout
    assert "Retraining on newest 56 days; " in result.stdout and "Training run" in result.stdout
    assert "labelled rows from the batch, 100 exact duplicate rows dropped" in result.stdout, result.stdout


@pytest.mark.integration
def test_zenml_deployer_answers_in_process_and_records_one_request_in_n(production_bike, zenml_client):
    """The default stack's server answers from the model loaded at start-up; `record_every: 4` records a full
    pipeline run for one request in four, on /predict and /invoke alike; ZenML's /submit is not offered."""
    from lifecycle.modeling import predict_scores
    from lifecycle.names import FEATURE_SCHEMA, INFERENCE_PIPELINE, MODEL, TEST_SET
    from serving.client import http_json
    from serving.contract import json_records
    from serving.rollout import live_endpoint, undeploy
    from serving.stack_backend import active_backend
    from workflows.runner import run_deployment

    version = zenml_client.get_model_version("monitored_bike", "production")
    schema = version.get_artifact(FEATURE_SCHEMA).load()
    rows = version.get_artifact(TEST_SET).load().head(3)
    expected, _ = predict_scores(version.get_model_artifact(MODEL).load(), rows[schema.model_inputs])
    records = json_records(rows, schema)

    def inference_runs() -> int:
        return zenml_client.list_pipeline_runs(pipeline_name=INFERENCE_PIPELINE, size=1).total

    run_deployment("monitored_bike", DeploymentConfig(port=free_port_block(), record_every=4, drain_seconds=0))
    backend = active_backend()
    try:
        endpoint = live_endpoint(backend, "monitored_bike")
        before = inference_runs()
        for _ in range(6):
            assert backend.predict(endpoint, records)[0] == pytest.approx(list(expected), abs=1e-9, rel=0)
        for _ in range(2):
            status, body = http_json(endpoint.url + "/invoke", {"parameters": {"records": records}})
            assert status == 200 and body["success"], body
            assert next(iter(body["outputs"].values()))["predictions"] == pytest.approx(list(expected), abs=1e-9)
        assert inference_runs() - before == 2  # requests 4 and 8 of 8
        status, _ = http_json(endpoint.url + "/submit", {"parameters": {"records": records}})
        assert status in (404, 405)
    finally:
        undeploy(backend, "monitored_bike")

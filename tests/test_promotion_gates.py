"""The validation gates: the strongest naive predictor, beyond the test set's noise; segments; an absolute bar."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_churn_table
from pydantic import ValidationError

from lifecycle.config import (
    DatasetConfig,
    EvaluationConfig,
    MinimumMetricGate,
    PromotionGates,
    SegmentGate,
    SplitConfig,
    TrainingConfig,
)
from lifecycle.metrics import EvaluationReport, NaiveBaseline, SegmentMetrics, evaluate_model, naive_baseline
from lifecycle.modeling import fit_model
from lifecycle.promotion import check_gates, decide_promotion, minimum_metric_gate, segment_gate
from lifecycle.splitting import split_table
from lifecycle.validation import validate_table


def trained_report(table: pd.DataFrame, dataset: DatasetConfig, evaluation: EvaluationConfig | None = None):
    clean, schema, _ = validate_table(table, dataset)
    train, test = split_table(clean, schema, SplitConfig(), seed=42)
    model, _ = fit_model(train, schema, TrainingConfig())
    return evaluate_model(model, train, test, schema, evaluation or EvaluationConfig()), train, test, schema


def noise_table(seed: int = 0, rows: int = 1000) -> pd.DataFrame:
    """Two balanced classes and features that say nothing about them."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(5)})
    table["colour"] = rng.choice(list("abc"), rows)
    table["label"] = rng.choice(["yes", "no"], rows)
    return table


def decision_for(report: EvaluationReport, gates: PromotionGates | None = None):
    metric = report.primary_metric
    return decide_promotion(
        metric,
        report.metrics[metric],
        report.baseline_metrics[metric],
        gates=check_gates(report, gates or PromotionGates()),
    )


def test_a_model_trained_on_noise_is_not_promoted_and_the_gate_says_why():
    report, *_ = trained_report(noise_table(), DatasetConfig(path="noise.csv", target="label"))
    naive = report.naive_baseline
    assert set(naive.by_predictor) == {"majority class", "class-prior sampling"}
    assert naive.model_wins is not None and naive.model_wins < 0.95
    decision = decision_for(report)
    assert not decision.promoted
    assert decision.reason.startswith("stopped by gate naive_baseline:")
    assert "bootstrap resamples" in decision.reason or "does not beat" in decision.reason
    assert [gate.name for gate in decision.gates] == ["naive_baseline", "segments", "minimum_metric"]
    # The former rule (F1-macro above the majority class's) would have let it through.
    majority_f1 = naive.by_predictor["majority class"]["f1_macro"]
    assert report.metrics["f1_macro"] > majority_f1


def test_a_real_signal_passes_every_gate_and_dry_runs_are_reported_not_enforced():
    report, *_ = trained_report(
        make_churn_table(), DatasetConfig(path="churn.csv", target="churned", segment_columns=["plan"])
    )
    assert report.naive_baseline.model_wins >= 0.95
    gates = PromotionGates(minimum_metric=MinimumMetricGate(mode="dry_run", value=0.999))
    decision = decision_for(report, gates)
    assert decision.promoted, decision.reason
    by_name = {gate.name: gate for gate in decision.gates}
    assert by_name["naive_baseline"].passed is True
    assert by_name["minimum_metric"].passed is False and not by_name["minimum_metric"].blocks
    assert "dry run" in by_name["minimum_metric"].describe()
    assert by_name["segments"].passed is None  # no production version yet
    enforced = PromotionGates(minimum_metric=MinimumMetricGate(mode="enabled", value=0.999))
    blocked = decision_for(report, enforced)
    assert not blocked.promoted and "stopped by gate minimum_metric" in blocked.reason


def test_the_strongest_naive_predictor_is_chosen_per_metric_and_the_season_counts():
    hours = pd.date_range("2024-01-01", periods=24 * 7 * 8, freq="h")
    rng = np.random.default_rng(1)
    # A steady trend: yesterday's value at this hour is a far better guess than the mean, and better than trees,
    # which cannot extrapolate past the training slice.
    demand = 100 + 0.5 * np.arange(len(hours)) + rng.normal(0, 2, len(hours))
    table = pd.DataFrame({"time": hours.strftime("%Y-%m-%d %H:%M"), "noise": rng.normal(size=len(hours)), "y": demand})
    dataset = DatasetConfig(path="t.csv", target="y", task="regression", time_columns=[{"column": "time"}])
    clean, schema, _ = validate_table(table, dataset)
    train, test = split_table(clean, schema, SplitConfig(), seed=0)
    plain = naive_baseline(train, test, schema)
    seasonal = naive_baseline(train, test, schema, season="1D")
    assert set(plain.by_predictor) == {"mean", "median"}
    assert seasonal.strongest["rmse"] == "seasonal naive (1D earlier)"
    assert seasonal.metrics["rmse"] < plain.metrics["rmse"] / 5
    # The model beats the mean but not the seasonal naive predictor.
    model, _ = fit_model(train, schema, TrainingConfig())
    report = evaluate_model(model, train, test, schema, EvaluationConfig(seasonal_naive="1D"), "rmse")
    assert report.baseline_metrics["rmse"] == pytest.approx(seasonal.metrics["rmse"])
    decision = decision_for(report)
    assert not decision.promoted and "seasonal naive" in decision.reason


def test_a_primary_win_does_not_excuse_a_large_loss_on_another_metric():
    naive = NaiveBaseline(
        metrics={"accuracy": 0.9, "f1_macro": 0.47, "roc_auc": 0.5},
        strongest={"accuracy": "majority class", "f1_macro": "class-prior sampling", "roc_auc": "majority class"},
        by_predictor={},
        model_wins=1.0,
    )
    report = EvaluationReport(
        task="classification",
        primary_metric="f1_macro",
        test_rows=500,
        metrics={"accuracy": 0.8, "f1_macro": 0.6, "roc_auc": 0.7},
        baseline_metrics=naive.metrics,
        naive_baseline=naive,
    )
    decision = decision_for(report)
    assert not decision.promoted
    assert "accuracy 0.8 trails majority class's 0.9 by 11% (margin 2%)" in decision.reason


def test_the_segment_gate_compares_each_segment_with_production_on_the_same_rows():
    ours = [
        SegmentMetrics(column="plan", value="basic", rows=50, metrics={"rmse": 10.0}),
        SegmentMetrics(column="plan", value="pro", rows=50, metrics={"rmse": 13.0}),
        SegmentMetrics(column="plan", value="tiny", rows=3, note="not scored"),
    ]
    theirs = [
        SegmentMetrics(column="plan", value="basic", rows=50, metrics={"rmse": 11.0}),
        SegmentMetrics(column="plan", value="pro", rows=50, metrics={"rmse": 10.0}),
        SegmentMetrics(column="plan", value="tiny", rows=3, metrics={"rmse": 1.0}),
    ]
    outcome = segment_gate("rmse", ours, theirs, "4", SegmentGate(mode="enabled", margin=0.1))
    assert outcome.passed is False and outcome.blocks
    assert "1 of 2 segments" in outcome.detail and "plan=pro 13 vs 10" in outcome.detail
    assert segment_gate("rmse", ours, theirs, "4", SegmentGate(mode="enabled", margin=0.5)).passed is True
    assert segment_gate("rmse", ours, None, None, SegmentGate(mode="enabled")).passed is None
    assert segment_gate("rmse", ours, theirs, "4", SegmentGate(mode="disabled")).passed is None


def test_minimum_metric_follows_the_metric_direction_and_needs_a_value():
    assert minimum_metric_gate("rmse", 50.0, MinimumMetricGate(mode="enabled", value=60.0)).passed is True
    assert minimum_metric_gate("rmse", 70.0, MinimumMetricGate(mode="enabled", value=60.0)).passed is False
    assert minimum_metric_gate("accuracy", 0.7, MinimumMetricGate(mode="enabled", value=0.8)).passed is False
    with pytest.raises(ValidationError, match="needs a `value`"):
        MinimumMetricGate(mode="enabled")
    with pytest.raises(ValidationError, match="not a time span"):
        EvaluationConfig(seasonal_naive="weekly")

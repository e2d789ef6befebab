"""Monitoring a production model on a new batch: batch checks, drift (Evidently), performance, retrain decision.

A bad batch never crashes monitoring: each problem is recorded in the summary, and predictions are skipped or
made for the rows that allow it, with the reason stated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from lifecycle.config import MonitoringPolicy
from lifecycle.metrics import LOWER_IS_BETTER, relative_gap, score
from lifecycle.validation import FeatureSchema, category_strings, non_numeric_cells

# A row with more than this share of its model inputs missing is not predicted.
MAX_MISSING_INPUT_SHARE = 0.5


class BatchCheck(BaseModel):
    rows: int
    missing_columns: list[str] = Field(default_factory=list)
    all_null_columns: list[str] = Field(default_factory=list)
    non_numeric_values: dict[str, int] = Field(default_factory=dict)
    unseen_categories: dict[str, list[str]] = Field(default_factory=dict)
    out_of_range: dict[str, int] = Field(default_factory=dict)
    missing_values: dict[str, int] = Field(default_factory=dict)
    predictable_rows: int = 0
    predictions_note: str = ""
    has_labels: bool = False

    @property
    def problems(self) -> list[str]:
        lines = []
        if self.rows == 0:
            lines.append("empty batch: nothing to predict or compare")
        if self.missing_columns:
            lines.append(f"missing columns: {', '.join(self.missing_columns)}")
        if self.all_null_columns:
            lines.append(f"all-null columns: {', '.join(self.all_null_columns)}")
        lines += [f"`{c}`: {n} non-numeric values treated as missing" for c, n in self.non_numeric_values.items()]
        lines += [
            f"`{c}`: unseen categories {', '.join(map(repr, values[:5]))}"
            for c, values in self.unseen_categories.items()
        ]
        lines += [f"`{c}`: {n} values outside the training range" for c, n in self.out_of_range.items()]
        if self.predictions_note:
            lines.append(self.predictions_note)
        return lines


class ColumnDrift(BaseModel):
    score: float
    method: str
    drifted: bool


class DriftSummary(BaseModel):
    judged: bool
    reason: str = ""
    share: float = 0.0
    drifted_columns: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnDrift] = Field(default_factory=dict)

    @classmethod
    def of(cls, judged: dict[str, ColumnDrift]) -> DriftSummary:
        """The summary of the columns' verdicts: the share and the names of those that drifted."""
        drifted = [c for c, d in judged.items() if d.drifted]
        return cls(
            judged=bool(judged),
            reason="" if judged else "no column could be compared",
            share=len(drifted) / len(judged) if judged else 0.0,
            drifted_columns=drifted,
            columns=judged,
        )


class PerformanceSummary(BaseModel):
    judged: bool
    reason: str = ""
    labelled_rows: int = 0
    metric: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    reference_metrics: dict[str, float] = Field(default_factory=dict)
    # Relative change of the primary metric vs the model's test set; positive = worse.
    degradation: float | None = None


class RetrainDecision(BaseModel):
    retrain: bool
    reasons: list[str]


class MonitoringSummary(BaseModel):
    model_name: str
    model_version: str
    batch_source: str
    batch: BatchCheck
    drift: DriftSummary
    performance: PerformanceSummary
    decision: RetrainDecision


def check_batch(batch: pd.DataFrame, schema: FeatureSchema, reference: pd.DataFrame) -> tuple[pd.DataFrame, BatchCheck]:
    """Compare a batch with the training schema; return it typed for the model, with what was wrong."""
    check = BatchCheck(
        rows=len(batch), has_labels=schema.target in batch.columns and batch[schema.target].notna().any()
    )
    prepared = batch.copy()
    check.missing_columns = [c for c in schema.model_inputs if c not in batch.columns]
    present = [c for c in schema.model_inputs if c in batch.columns]
    if len(batch):
        check.all_null_columns = [c for c in present if batch[c].isna().all()]
    for column in schema.numeric_features:
        if column not in prepared.columns:
            continue
        converted, bad = non_numeric_cells(prepared[column])
        if len(bad):
            check.non_numeric_values[column] = len(bad)
        converted = converted.astype(float).mask(np.isinf(converted.astype(float)))
        prepared[column] = converted
        if column in reference.columns and converted.notna().any():
            low, high = reference[column].min(), reference[column].max()
            outside = int(((converted < low) | (converted > high)).sum())
            if outside:
                check.out_of_range[column] = outside
    for column in schema.categorical_features:
        if column not in prepared.columns or column not in reference.columns:
            continue
        # Compared as the model reads categories (1, 1.0 and "1" are one), listed as the batch writes them.
        known = set(category_strings(reference[column].dropna()))
        seen = prepared[column].dropna()
        unseen = sorted(set(seen[~category_strings(seen).isin(known)].astype(str)))
        if unseen:
            check.unseen_categories[column] = unseen
    if schema.target in prepared.columns and schema.task == "regression":
        prepared[schema.target] = pd.to_numeric(prepared[schema.target], errors="coerce")
    check.missing_values = {c: int(prepared[c].isna().sum()) for c in present if prepared[c].isna().any()}

    if check.rows and not check.missing_columns:
        missing_share = prepared[schema.model_inputs].isna().mean(axis=1)
        predictable = missing_share <= MAX_MISSING_INPUT_SHARE
        check.predictable_rows = int(predictable.sum())
        prepared = prepared.assign(_predictable=predictable.to_numpy())
    check.predictions_note = predictions_note(check)
    if "_predictable" not in prepared.columns:
        prepared = prepared.assign(_predictable=False)
    return prepared, check


def predictions_note(check: BatchCheck) -> str:
    """What the check means for the predictions ("" when every row is predicted)."""
    if check.rows == 0:
        return "predictions skipped: the batch is empty"
    if check.missing_columns:
        return f"predictions skipped: the model needs {', '.join(check.missing_columns)}, absent from the batch"
    if check.predictable_rows < check.rows:
        return (
            f"predictions partial: {check.rows - check.predictable_rows} of {check.rows} rows have more than "
            f"{MAX_MISSING_INPUT_SHARE:.0%} of their inputs missing and were not predicted"
        )
    return ""


def predict_rows(model: Any, prepared: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """Predictions for the predictable rows; the others keep an empty prediction."""
    mask = prepared["_predictable"].to_numpy(dtype=bool)
    result = prepared.drop(columns="_predictable")
    if len(mask) and mask.all():  # the common case: one predict call on the batch as it is, no copies of the rows
        result["prediction"] = model.predict(prepared[schema.model_inputs])
        return result
    predictions = pd.Series(
        np.nan if schema.task == "regression" else None,
        index=prepared.index,
        dtype=float if schema.task == "regression" else object,
    )
    if mask.any():
        predictions[mask] = model.predict(prepared.loc[mask, schema.model_inputs])
    result["prediction"] = predictions
    return result


def monitored_columns(schema: FeatureSchema) -> list[str]:
    """Drift is judged on the features; time columns always move forward and would always 'drift'."""
    return schema.features


def drift_from_snapshot(snapshot: dict[str, Any], columns: list[str]) -> DriftSummary:
    """Per-column drift scores from Evidently's metrics, drift verdicts from its tests."""
    scores: dict[str, tuple[float, str]] = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config") or {}
        if isinstance(config, dict) and str(config.get("type", "")).endswith("ValueDrift"):
            scores[config["column"]] = (float(metric["value"]), str(config.get("method", "")))
    verdicts: dict[str, bool] = {}
    for test in snapshot.get("tests", []):
        params = (test.get("metric_config") or {}).get("params") or {}
        if str(params.get("type", "")).endswith("ValueDrift"):
            verdicts[params["column"]] = str(getattr(test.get("status"), "value", test.get("status"))) == "FAIL"
    judged = {
        c: ColumnDrift(score=scores[c][0], method=scores[c][1], drifted=verdicts.get(c, False))
        for c in columns
        if c in scores
    }
    return DriftSummary.of(judged)


def run_drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, schema: FeatureSchema, min_rows: int
) -> tuple[str, DriftSummary]:
    """Evidently data drift + data summary (current vs reference): the HTML report and the drift summary."""
    columns = [c for c in monitored_columns(schema) if c in current.columns and current[c].notna().any()]
    if len(current) < min_rows or not columns:
        reason = (
            f"batch has {len(current)} rows; drift is judged from {min_rows}"
            if len(current) < min_rows
            else "no monitored column present"
        )
        return _placeholder_html(reason), DriftSummary(judged=False, reason=reason)
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    numeric = [c for c in columns if c in schema.numeric_features]
    categorical = [c for c in columns if c in schema.categorical_features]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)

    def as_dataset(frame: pd.DataFrame) -> Dataset:
        typed = frame[columns].copy()
        for column in categorical:
            typed[column] = category_strings(typed[column])  # the model's own reading of a category
        return Dataset.from_pandas(typed, data_definition=definition)

    report = Report([DataDriftPreset(), DataSummaryPreset()], include_tests=True)
    snapshot = report.run(as_dataset(current), as_dataset(reference))
    return snapshot.get_html_str(as_iframe=False), drift_from_snapshot(snapshot.dict(), columns)


def _placeholder_html(reason: str) -> str:
    return f"<html><body><h2>Drift report not computed</h2><p>{reason}</p></body></html>"


def performance_on_batch(
    predictions: pd.DataFrame, schema: FeatureSchema, reference_metrics: dict[str, float], metric: str
) -> PerformanceSummary:
    if schema.target not in predictions.columns:
        return PerformanceSummary(judged=False, reason="no labels in the batch (target column absent)")
    labelled = predictions[predictions[schema.target].notna() & predictions["prediction"].notna()]
    if labelled.empty:
        return PerformanceSummary(judged=False, reason="no labelled rows with a prediction")
    metrics = score(schema.task, labelled[schema.target], labelled["prediction"].to_numpy())
    degradation = relative_gap(metric, metrics[metric], reference_metrics[metric]) if metric in metrics else None
    return PerformanceSummary(
        judged=True,
        labelled_rows=len(labelled),
        metric=metric,
        metrics=metrics,
        reference_metrics=reference_metrics,
        degradation=degradation,
    )


def decide_retraining(
    check: BatchCheck,
    drift: DriftSummary,
    performance: PerformanceSummary,
    policy: MonitoringPolicy,
    on_demand: bool = False,
) -> RetrainDecision:
    reasons = []
    if on_demand:
        reasons.append("retraining requested on demand")
    if drift.judged and check.rows >= policy.min_rows_for_drift and drift.share >= policy.drift_share_threshold:
        reasons.append(
            f"drift: {drift.share:.0%} of columns drifted ({', '.join(drift.drifted_columns)}) "
            f">= threshold {policy.drift_share_threshold:.0%}"
        )
    degradation = performance.degradation if performance.judged else None
    if degradation is not None and degradation >= policy.degradation_threshold:
        direction = "up" if performance.metric in LOWER_IS_BETTER else "down"
        reasons.append(
            f"performance: {performance.metric} {direction} {abs(degradation):.0%} vs the model's "
            f"test set (threshold {policy.degradation_threshold:.0%})"
        )
    if reasons:
        return RetrainDecision(retrain=True, reasons=reasons)
    why = [
        f"drift {drift.share:.0%} < {policy.drift_share_threshold:.0%}" if drift.judged else f"drift: {drift.reason}",
        (
            f"{performance.metric} {versus_test_set(performance.degradation)}, retraining from "
            f"{policy.degradation_threshold:.0%} worse"
            if performance.judged and performance.degradation is not None
            else f"performance: {performance.reason}"
        ),
    ]
    return RetrainDecision(retrain=False, reasons=["no trigger: " + "; ".join(why)])


def versus_test_set(degradation: float) -> str:
    """A relative change of a metric, from `relative_gap` (positive = worse), in words that read right whether
    the metric is an error (lower is better) or a score (higher is better): `83% better`, `12% worse`."""
    if round(abs(degradation), 2) == 0:
        return "as on the test set"
    return f"{abs(degradation):.0%} {'worse' if degradation > 0 else 'better'} than on the test set"


MONITORING_HISTORY = "monitoring_history"  # on the model version: one entry per monitoring run, oldest first
HISTORY_KEPT = 100


def history_entry(summary: MonitoringSummary, run_name: str, at: str) -> dict[str, Any]:
    """A monitoring run in a few figures, for the version's history (its model card plots them)."""
    return {
        "at": at,
        "run": run_name,
        "batch": Path(summary.batch_source).name,
        "rows": summary.batch.rows,
        "drift_share": summary.drift.share if summary.drift.judged else None,
        "drifted_columns": summary.drift.drifted_columns,
        "metrics": summary.performance.metrics if summary.performance.judged else {},
        "retrain": summary.decision.retrain,
        "reasons": summary.decision.reasons,
    }

"""Metrics overall, per segment (bias check) and for a naive baseline, all on the same test set."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.pipeline import Pipeline

from lifecycle.config import EvaluationConfig
from lifecycle.modeling import predict_scores
from lifecycle.validation import FeatureSchema

LOWER_IS_BETTER = {"mae", "rmse"}
DEFAULT_METRIC = {"regression": "rmse", "classification": "f1_macro"}
# Numeric segment columns with more distinct values than this are cut into quantile bins.
MAX_SEGMENT_VALUES = 20
SEGMENT_BINS = 4


class SegmentMetrics(BaseModel):
    column: str
    value: str
    rows: int
    metrics: dict[str, float] = Field(default_factory=dict)
    # Relative gap of the primary metric to the overall one; positive = worse than overall.
    gap: float | None = None
    flagged: bool = False
    note: str = ""


class EvaluationReport(BaseModel):
    task: str
    primary_metric: str
    test_rows: int
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    segments: list[SegmentMetrics] = Field(default_factory=list)

    @property
    def flagged_segments(self) -> list[SegmentMetrics]:
        return [segment for segment in self.segments if segment.flagged]


def is_better(metric: str, candidate: float, reference: float, min_improvement: float = 0.0) -> bool:
    """True when `candidate` beats `reference` by at least `min_improvement` (relative), strictly."""
    if metric in LOWER_IS_BETTER:
        return candidate < reference and candidate <= reference * (1 - min_improvement)
    return candidate > reference and candidate >= reference + abs(reference) * min_improvement


def relative_gap(metric: str, value: float, reference: float) -> float:
    """How much worse `value` is than `reference`, relative (positive = worse)."""
    if reference == 0 or not math.isfinite(reference):
        return 0.0
    change = (value - reference) / abs(reference)
    return change if metric in LOWER_IS_BETTER else -change


def score(task: str, y_true: pd.Series, y_pred: np.ndarray, y_score: np.ndarray | None = None) -> dict[str, float]:
    if task == "regression":
        return {
            "mae": float(mean_absolute_error(y_true, y_pred)),
            "rmse": float(root_mean_squared_error(y_true, y_pred)),
            "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
        }
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    if y_score is not None and pd.Series(y_true).nunique() == 2:
        metrics["roc_auc"] = float(roc_auc_score(y_true, y_score))
    return metrics


def score_model(model: Pipeline, test: pd.DataFrame, schema: FeatureSchema) -> dict[str, float]:
    # Probabilities are for model.classes_[1], the larger label, which roc_auc_score also takes as positive.
    predictions, probabilities = predict_scores(model, test)
    return score(schema.task, test[schema.target], predictions, probabilities)


def baseline_metrics(train: pd.DataFrame, test: pd.DataFrame, schema: FeatureSchema) -> dict[str, float]:
    """A naive model (mean / majority class) learnt on the training slice and scored on the test set."""
    dummy = DummyRegressor(strategy="mean") if schema.task == "regression" else DummyClassifier(strategy="prior")
    dummy.fit(np.zeros((len(train), 1)), train[schema.target])
    predictions = dummy.predict(np.zeros((len(test), 1)))
    probabilities = None
    if schema.task == "classification" and len(dummy.classes_) == 2:
        probabilities = dummy.predict_proba(np.zeros((len(test), 1)))[:, 1]
    return score(schema.task, test[schema.target], predictions, probabilities)


def segment_labels(values: pd.Series) -> pd.Series:
    """Segment names: the value itself, or a quantile bin for a numeric column with many values."""
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > MAX_SEGMENT_VALUES:
        return pd.qcut(values, q=SEGMENT_BINS, duplicates="drop").astype(str)
    return values.astype(object).where(values.notna(), "(missing)").astype(str)


def evaluate_model(
    model: Pipeline,
    train: pd.DataFrame,
    test: pd.DataFrame,
    schema: FeatureSchema,
    evaluation: EvaluationConfig,
    primary_metric: str | None = None,
) -> EvaluationReport:
    metric = primary_metric or DEFAULT_METRIC[schema.task]
    overall = score_model(model, test, schema)
    if metric not in overall:
        raise ValueError(
            f"promotion.metric `{metric}` is not computed for {schema.task}; choose one of {', '.join(overall)}"
        )
    segments: list[SegmentMetrics] = []
    for column in schema.segment_columns:
        labels = segment_labels(test[column])
        for value, rows in test.groupby(labels, sort=True, observed=True):
            segment = SegmentMetrics(column=column, value=str(value), rows=len(rows))
            if len(rows) < evaluation.min_segment_rows:
                segment.note = f"not scored: fewer than {evaluation.min_segment_rows} test rows"
            else:
                segment.metrics = score_model(model, rows, schema)
                if metric in segment.metrics:
                    segment.gap = relative_gap(metric, segment.metrics[metric], overall[metric])
                    segment.flagged = segment.gap > evaluation.segment_gap_tolerance
            segments.append(segment)
    return EvaluationReport(
        task=schema.task,
        primary_metric=metric,
        test_rows=len(test),
        metrics=overall,
        baseline_metrics=baseline_metrics(train, test, schema),
        segments=segments,
    )

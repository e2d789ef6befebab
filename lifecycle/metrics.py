"""Metrics overall, per segment (bias check) and for a naive baseline, all on the same test set."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.dummy import DummyClassifier
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.pipeline import Pipeline

from lifecycle.config import EvaluationConfig
from lifecycle.modeling import predict_scores
from lifecycle.validation import FeatureSchema, parse_time_column

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


class NaiveBaseline(BaseModel):
    """The naive predictors' metrics on the test set, and for each metric the strongest of them."""

    metrics: dict[str, float]  # metric -> the strongest naive predictor's value
    strongest: dict[str, str]  # metric -> which predictor that is
    by_predictor: dict[str, dict[str, float]]
    # Share of bootstrap resamples of the test rows on which the model beats the strongest naive predictor on the
    # primary metric (the test set's noise: a model no better than naive wins about half of them).
    model_wins: float | None = None


class ClassMetrics(BaseModel):
    """One class of a classifier on the test set."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int  # test rows of this class


class ClassBreakdown(BaseModel):
    """What a classifier's overall metrics average over: each class's metrics, the confusion matrix (rows: the
    true class, columns: the predicted one, in `labels` order) and each class's share of the train and test rows."""

    labels: list[str]
    classes: list[ClassMetrics]
    confusion: list[list[int]]
    train_shares: dict[str, float]
    test_shares: dict[str, float]


def class_breakdown(y_train: pd.Series, y_true: pd.Series, y_pred: np.ndarray) -> ClassBreakdown:
    """Per-class precision, recall, F1 and support, the confusion matrix and the class balance, with every class
    seen in training, testing or the predictions (labels as text, in sorted order)."""
    train, true, predicted = (pd.Series(values).astype(str) for values in (y_train, y_true, y_pred))
    labels = sorted(set(train) | set(true) | set(predicted))
    precision, recall, f1, support = precision_recall_fscore_support(true, predicted, labels=labels, zero_division=0)
    classes = [
        ClassMetrics(label=label, precision=float(p), recall=float(r), f1=float(f), support=int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    ]
    matrix = confusion_matrix(true, predicted, labels=labels)

    def shares(values: pd.Series) -> dict[str, float]:
        counts = values.value_counts()
        return {label: float(counts.get(label, 0) / max(len(values), 1)) for label in labels}

    return ClassBreakdown(
        labels=labels,
        classes=classes,
        confusion=[[int(cell) for cell in row] for row in matrix],
        train_shares=shares(train),
        test_shares=shares(true),
    )


class EvaluationReport(BaseModel):
    task: str
    primary_metric: str
    test_rows: int
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]  # per metric, the strongest naive predictor's value
    naive_baseline: NaiveBaseline | None = None
    segments: list[SegmentMetrics] = Field(default_factory=list)
    by_class: ClassBreakdown | None = None  # classifiers only

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


def row_times(table: pd.DataFrame, schema: FeatureSchema) -> pd.Series:
    """One timestamp per row from the time columns: the first gives the date, later ones add their time of day."""
    first, *rest = [
        parse_time_column(table[column], schema.time_formats.get(column), "the table") for column in schema.time_columns
    ]
    for parsed in rest:
        first = first + (parsed - parsed.dt.normalize())
    return first


def naive_predictions(
    train: pd.DataFrame, test: pd.DataFrame, schema: FeatureSchema, season: str | None = None, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """What naive predictors learnt on the training slice say for the test rows: {name: (predictions, scores)}.

    Regression: the training mean and median, and with `season` (e.g. "7D") and time columns the seasonal naive
    predictor: the target observed one season before each test row (the training mean where none was).
    Classification: the majority class and class-prior sampling (scores: the training share of the positive class).
    """
    target = train[schema.target]
    blank = np.zeros((len(test), 1))
    if schema.task == "classification":
        predictors = {
            "majority class": DummyClassifier(strategy="most_frequent"),
            "class-prior sampling": DummyClassifier(strategy="stratified", random_state=seed),
        }
        answers = {}
        for name, dummy in predictors.items():
            dummy.fit(np.zeros((len(train), 1)), target)
            scores = dummy.predict_proba(blank)[:, 1] if len(dummy.classes_) == 2 else None
            if scores is not None and name != "majority class":
                scores = np.full(len(test), float((target == dummy.classes_[1]).mean()))
            answers[name] = (dummy.predict(blank), scores)
        return answers
    answers = {
        "mean": (np.full(len(test), float(target.mean())), None),
        "median": (np.full(len(test), float(target.median())), None),
    }
    if season and schema.time_columns:
        known = pd.concat([train, test], ignore_index=True)
        history = pd.Series(known[schema.target].to_numpy(), index=row_times(known, schema))
        history = history[~history.index.duplicated(keep="last")]
        earlier = history.reindex(row_times(test, schema) - pd.Timedelta(season)).to_numpy(dtype=float)
        answers[f"seasonal naive ({season} earlier)"] = (np.where(np.isnan(earlier), target.mean(), earlier), None)
    return answers


def bootstrap_wins(
    task: str,
    metric: str,
    y_true: pd.Series,
    model: tuple[np.ndarray, np.ndarray | None],
    naive: tuple[np.ndarray, np.ndarray | None],
    resamples: int,
    seed: int = 0,
) -> float:
    """Share of resamples (rows drawn with replacement, the same rows for both) on which `model` beats `naive`."""
    rng = np.random.default_rng(seed)
    truth = np.asarray(y_true)
    wins = 0

    def pick(answer: tuple[np.ndarray, np.ndarray | None], rows: np.ndarray) -> dict[str, float]:
        return score(task, truth[rows], answer[0][rows], None if answer[1] is None else answer[1][rows])

    for _ in range(resamples):
        rows = rng.integers(0, len(truth), len(truth))
        ours, theirs = pick(model, rows), pick(naive, rows)
        if metric in ours and metric in theirs:
            wins += is_better(metric, ours[metric], theirs[metric])
    return wins / resamples


def naive_baseline(
    train: pd.DataFrame,
    test: pd.DataFrame,
    schema: FeatureSchema,
    season: str | None = None,
    model_answers: tuple[np.ndarray, np.ndarray | None] | None = None,
    metric: str | None = None,
    resamples: int = 200,
) -> NaiveBaseline:
    """The strongest naive predictor for every metric; with the model's answers, how often it beats the strongest
    on `metric` over bootstrap resamples of the test rows."""
    answers = naive_predictions(train, test, schema, season)
    truth = test[schema.target]
    by_predictor = {name: score(schema.task, truth, *answer) for name, answer in answers.items()}
    strongest: dict[str, str] = {}
    for name, metrics in by_predictor.items():
        for key, value in metrics.items():
            best = strongest.get(key)
            if best is None or is_better(key, value, by_predictor[best][key]):
                strongest[key] = name
    baseline = NaiveBaseline(
        metrics={key: by_predictor[name][key] for key, name in strongest.items()},
        strongest=strongest,
        by_predictor=by_predictor,
    )
    if model_answers is not None and metric in strongest:
        baseline.model_wins = bootstrap_wins(
            schema.task, metric, truth, model_answers, answers[strongest[metric]], resamples
        )
    return baseline


def baseline_metrics(train: pd.DataFrame, test: pd.DataFrame, schema: FeatureSchema) -> dict[str, float]:
    """For every metric, the strongest naive predictor's value on the test set."""
    return naive_baseline(train, test, schema).metrics


def segment_labels(values: pd.Series) -> pd.Series:
    """Segment names: the value itself, or a quantile bin for a numeric column with many values."""
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > MAX_SEGMENT_VALUES:
        return pd.qcut(values, q=SEGMENT_BINS, duplicates="drop").astype(str)
    return values.astype(object).where(values.notna(), "(missing)").astype(str)


def score_segments(model: Pipeline, test: pd.DataFrame, schema: FeatureSchema, min_rows: int) -> list[SegmentMetrics]:
    """The model's metrics on each segment of the test set (segments with fewer than `min_rows` rows: listed only)."""
    segments: list[SegmentMetrics] = []
    for column in schema.segment_columns:
        labels = segment_labels(test[column])
        for value, rows in test.groupby(labels, sort=True, observed=True):
            segment = SegmentMetrics(column=column, value=str(value), rows=len(rows))
            if len(rows) < min_rows:
                segment.note = f"not scored: fewer than {min_rows} test rows"
            else:
                segment.metrics = score_model(model, rows, schema)
            segments.append(segment)
    return segments


def evaluate_model(
    model: Pipeline,
    train: pd.DataFrame,
    test: pd.DataFrame,
    schema: FeatureSchema,
    evaluation: EvaluationConfig,
    primary_metric: str | None = None,
) -> EvaluationReport:
    metric = primary_metric or DEFAULT_METRIC[schema.task]
    answers = predict_scores(model, test)
    overall = score(schema.task, test[schema.target], *answers)
    if metric not in overall:
        raise ValueError(
            f"promotion.metric `{metric}` is not computed for {schema.task}; choose one of {', '.join(overall)}"
        )
    segments = score_segments(model, test, schema, evaluation.min_segment_rows)
    for segment in segments:
        if metric in segment.metrics:
            segment.gap = relative_gap(metric, segment.metrics[metric], overall[metric])
            segment.flagged = segment.gap > evaluation.segment_gap_tolerance
    naive = naive_baseline(
        train, test, schema, evaluation.seasonal_naive, answers, metric, evaluation.bootstrap_resamples
    )
    by_class = (
        class_breakdown(train[schema.target], test[schema.target], answers[0])
        if schema.task == "classification"
        else None
    )
    return EvaluationReport(
        task=schema.task,
        primary_metric=metric,
        test_rows=len(test),
        metrics=overall,
        baseline_metrics=naive.metrics,
        naive_baseline=naive,
        segments=segments,
        by_class=by_class,
    )

"""Trainers side by side: the configured estimator and its challengers (an H2O AutoML leader) scored on the same
test rows with the same metrics; the better on the primary metric becomes the candidate, the other's figures are
kept beside it. Plain functions, no ZenML."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from lifecycle.config import TrainingConfig
from lifecycle.metrics import DEFAULT_METRIC, is_better, score
from lifecycle.modeling import chosen_params, predict_scores
from lifecycle.mojo_model import MojoModel
from lifecycle.validation import FeatureSchema

CONFIGURED = "configured"  # the trainer of `training.estimator`


class TrainerFigures(BaseModel):
    """One trainer's model on the shared test rows."""

    trainer: str
    estimator: str
    metrics: dict[str, float]
    interval: tuple[float, float]  # the primary metric's 95 % bootstrap interval over the test rows
    train_seconds: float
    size_bytes: int


class TrainerComparison(BaseModel):
    primary_metric: str
    chosen: str
    reason: str
    trainers: list[TrainerFigures] = Field(default_factory=list)

    def figures(self, trainer: str) -> TrainerFigures:
        return next(figures for figures in self.trainers if figures.trainer == trainer)


def describe_model(model: Any, training: TrainingConfig) -> tuple[str, dict[str, Any]]:
    """The estimator's name and the parameters worth showing, for either kind of model."""
    if isinstance(model, MojoModel):
        return f"h2o_automl:{model.algorithm}", {"model_id": model.model_id, "algorithm": model.algorithm}
    return training.estimator.name, chosen_params(model, training)


def model_size(model: Any) -> int:
    """Bytes of the pickled model: what an artifact, a bento or an MLflow model stores for it."""
    return len(pickle.dumps(model))


def bootstrap_interval(
    task: str, metric: str, y_true: pd.Series, answers: tuple[np.ndarray, np.ndarray | None], resamples: int, seed: int
) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the metric over bootstrap resamples of the test rows."""
    rng = np.random.default_rng(seed)
    truth = y_true.to_numpy()
    predictions, probabilities = answers
    values = []
    for _ in range(resamples):
        rows = rng.integers(0, len(truth), len(truth))
        picked = score(
            task, pd.Series(truth[rows]), predictions[rows], None if probabilities is None else probabilities[rows]
        )
        if metric in picked and picked[metric] == picked[metric]:
            values.append(picked[metric])
    if not values:
        return (float("nan"), float("nan"))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def trainer_figures(
    trainer: str,
    model: Any,
    test: pd.DataFrame,
    schema: FeatureSchema,
    training: TrainingConfig,
    metric: str,
    train_seconds: float,
    resamples: int = 200,
) -> TrainerFigures:
    answers = predict_scores(model, test)
    metrics = score(schema.task, test[schema.target], *answers)
    return TrainerFigures(
        trainer=trainer,
        estimator=describe_model(model, training)[0],
        metrics=metrics,
        interval=bootstrap_interval(schema.task, metric, test[schema.target], answers, resamples, training.seed),
        train_seconds=round(train_seconds, 2),
        size_bytes=model_size(model),
    )


def choose_trainer(
    models: dict[str, tuple[Any, float]],
    test: pd.DataFrame,
    schema: FeatureSchema,
    training: TrainingConfig,
    primary_metric: str | None,
    resamples: int = 200,
) -> tuple[str, TrainerComparison]:
    """Score each trainer's model (name -> (model, training seconds)) on the same test rows; the best on the
    primary metric wins (the configured estimator on a tie)."""
    metric = primary_metric or DEFAULT_METRIC[schema.task]
    figures = [
        trainer_figures(name, model, test, schema, training, metric, seconds, resamples)
        for name, (model, seconds) in models.items()
    ]
    best = figures[0]
    for candidate in figures[1:]:
        if is_better(metric, candidate.metrics[metric], best.metrics[metric]):
            best = candidate
    others = ", ".join(f"{f.trainer} {f.metrics[metric]:.4g}" for f in figures if f is not best)
    reason = f"{best.trainer} has the better {metric} on the same test rows: {best.metrics[metric]:.4g} (vs {others})"
    return best.trainer, TrainerComparison(primary_metric=metric, chosen=best.trainer, reason=reason, trainers=figures)

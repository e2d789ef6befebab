"""`python run.py compare --trainers`: the configured estimator against the H2O AutoML leader on the same split of
the same data: the primary metric with its bootstrap interval, training time, model size, one-row latency and
batch throughput in-process, and a one-line reading. No ZenML run: the split, the models and the scoring are the
pipeline's own functions (`lifecycle.*`), called directly."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from lifecycle.automl import require_automl, train_automl
from lifecycle.config import RunConfig
from lifecycle.data import read_table
from lifecycle.metrics import DEFAULT_METRIC, LOWER_IS_BETTER
from lifecycle.modeling import fit_model, one_thread
from lifecycle.splitting import split_table
from lifecycle.trainers import CONFIGURED, TrainerFigures, trainer_figures
from lifecycle.validation import validate_table
from measurement.load import in_process_latency
from serving.contract import json_records, records_frame


def _speed(model: Any, schema: Any, test: pd.DataFrame, requests: int) -> dict[str, float]:
    """One-row latency through the request contract's table (p50, ms) and whole-test-set rows per second (best of 3)."""
    bodies = [{"records": [record]} for record in json_records(test.head(200), schema)]
    frames = [records_frame(body, schema) for body in bodies]
    model.predict(frames[0])  # warm: the H2O model's JVM starts on its first call
    seconds = []
    with one_thread():  # as the servers run (OMP_NUM_THREADS=1); the H2O scorer is one thread too
        one_row = in_process_latency(model.predict, frames, requests)
        for _ in range(3):  # the best of three: a shared machine's load comes and goes
            started = time.perf_counter()
            model.predict(test)
            seconds.append(time.perf_counter() - started)
    return {"p50_ms": one_row["p50_ms"], "batch_rows_per_s": len(test) / min(seconds)}


def reading(metric: str, figures: list[TrainerFigures], speed: dict[str, dict[str, float]]) -> str:
    """Which to pick and why, in one line: the better metric only when the intervals do not overlap."""
    configured, leader = figures
    lower = metric in LOWER_IS_BETTER
    ahead = (leader.metrics[metric] < configured.metrics[metric]) == lower
    better, other = (leader, configured) if ahead else (configured, leader)
    apart = better.interval[1] < other.interval[0] if lower else better.interval[0] > other.interval[1]
    slower = speed[leader.trainer]["p50_ms"] / speed[configured.trainer]["p50_ms"]
    cost = (
        f"the AutoML leader trains in {leader.train_seconds / max(configured.train_seconds, 1e-9):.1f}x the time "
        f"and answers one row in {slower:.1f}x the time"
    )
    if apart:
        return (
            f"pick {better.trainer} ({better.estimator}): its {metric} {better.metrics[metric]:.4g} beats "
            f"{other.metrics[metric]:.4g} beyond both 95% intervals; {cost}."
        )
    return (
        f"pick {configured.trainer} ({configured.estimator}): the {metric} intervals overlap "
        f"({configured.metrics[metric]:.4g} vs {leader.metrics[metric]:.4g}), so the simpler model wins; {cost}."
    )


def compare_trainers(config: RunConfig, requests: int = 200) -> dict[str, Any]:
    """Both trainers on the config's data and split; the figures and the reading."""
    require_automl()
    table = read_table(config.dataset.path, csv_format=config.dataset.csv)
    clean, schema, _ = validate_table(table, config.dataset)
    train, test = split_table(clean, schema, config.split, seed=config.training.seed)
    metric = config.promotion.metric or DEFAULT_METRIC[schema.task]
    started = time.perf_counter()
    configured, _ = fit_model(train, schema, config.training)
    configured_seconds = time.perf_counter() - started
    leader = train_automl(train, schema, config.training, metric)
    models = {CONFIGURED: (configured, configured_seconds), "h2o_automl": (leader.model, leader.train_seconds)}
    figures = [
        trainer_figures(
            name, model, test, schema, config.training, metric, seconds, config.evaluation.bootstrap_resamples
        )
        for name, (model, seconds) in models.items()
    ]
    speed = {name: _speed(model, schema, test, requests) for name, (model, _) in models.items()}
    leader.model.stop_scorer()
    return {
        "data": config.dataset.path,
        "task": schema.task,
        "train_rows": len(train),
        "test_rows": len(test),
        "metric": metric,
        "trainers": [
            {**f.model_dump(), **speed[f.trainer], "models_searched": len(leader.leaderboard)}
            if f.trainer != CONFIGURED
            else {**f.model_dump(), **speed[f.trainer]}
            for f in figures
        ],
        "reading": reading(metric, figures, speed),
    }


def trainers_markdown(result: dict[str, Any]) -> str:
    metric = result["metric"]
    lines = [
        f"### Trainers on {result['data'].rsplit('/', 1)[-1]} ({result['task']}, {result['train_rows']} training "
        f"rows, {result['test_rows']} test rows)",
        "",
        f"| trainer | estimator | {metric} | 95% interval | train s | size | one-row p50 ms | batch rows/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["trainers"]:
        low, high = row["interval"]
        lines.append(
            f"| {row['trainer']} | {row['estimator']} | {row['metrics'][metric]:.4g} | {low:.4g} to {high:.4g} | "
            f"{row['train_seconds']:.1f} | {row['size_bytes'] / 1024:.0f} KiB | {row['p50_ms']:.2f} | "
            f"{row['batch_rows_per_s']:,.0f} |"
        )
    lines += ["", f"Reading: {result['reading']}"]
    return "\n".join(lines)

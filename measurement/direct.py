"""The work of the training and monitoring pipelines, done by calling the plain functions their steps wrap.

No ZenML: the yardstick for what orchestration costs (`python run.py compare`, `benchmarks/pipelines.py`).
Each function is timed under the name of the step that wraps it, so the two can be laid side by side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifecycle.config import RunConfig
from lifecycle.data import file_fingerprint, read_table
from lifecycle.metrics import evaluate_model
from lifecycle.modeling import fit_model
from lifecycle.monitoring import check_batch, performance_on_batch, predict_rows, run_drift_report
from lifecycle.promotion import check_gates, decide_promotion
from lifecycle.splitting import split_table
from lifecycle.validation import validate_table


@dataclass
class DirectRun:
    training_seconds: float = 0.0
    training_steps: dict[str, float] = field(default_factory=dict)
    monitoring_seconds: float = 0.0
    monitoring_steps: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    batch_rows: int = 0
    model_predict_seconds: float = 0.0  # `model.predict` alone on the batch's rows
    model: Any = None


def _timed(clock: dict[str, float], step_name: str, function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    clock[step_name] = time.perf_counter() - started
    return result


def run_directly(config: RunConfig, batch_path: str | Path, min_rows_for_drift: int = 50) -> DirectRun:
    """Ingest, validate, split, train, evaluate and decide promotion (against no production), then monitor
    one batch: the same functions and settings as the pipelines, in this process, one after the other."""
    run = DirectRun()
    steps: dict[str, float] = {}
    started = time.perf_counter()
    _, raw = _timed(steps, "ingest_data", lambda path: (file_fingerprint(path), read_table(path)), config.dataset.path)
    clean, schema, _ = _timed(steps, "validate_data", validate_table, raw, config.dataset)
    train, test = _timed(steps, "split_data", split_table, clean, schema, config.split, config.training.seed)
    model, _ = _timed(steps, "train_model", fit_model, train, schema, config.training)
    report = _timed(
        steps, "evaluate", evaluate_model, model, train, test, schema, config.evaluation, config.promotion.metric
    )
    metric = report.primary_metric
    _timed(
        steps,
        "promote_model",
        lambda: decide_promotion(
            metric,
            report.metrics[metric],
            report.baseline_metrics[metric],
            gates=check_gates(report, config.promotion.gates),
        ),
    )
    run.training_seconds, run.training_steps, run.metrics = time.perf_counter() - started, steps, report.metrics

    monitor: dict[str, float] = {}
    started = time.perf_counter()
    batch = _timed(monitor, "load_batch", read_table, batch_path, allow_empty=True)
    prepared, _ = _timed(monitor, "check_batch_step", check_batch, batch, schema, train)
    predictions = _timed(monitor, "predict_batch", predict_rows, model, prepared, schema)
    _timed(monitor, "drift_report", run_drift_report, train, prepared, schema, min_rows_for_drift)
    _timed(monitor, "summarize_monitoring", performance_on_batch, predictions, schema, report.metrics, metric)
    run.monitoring_seconds, run.monitoring_steps = time.perf_counter() - started, monitor

    rows = prepared[schema.model_inputs]
    started = time.perf_counter()
    model.predict(rows)
    run.model_predict_seconds, run.batch_rows, run.model = time.perf_counter() - started, len(rows), model
    return run

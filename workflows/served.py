"""What the servers answered, put to work: export the prediction log, attach labels, monitor what was served,
and trace one prediction back to its data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lifecycle.config import DeploymentConfig, RunConfig
from lifecycle.environment import state_dir
from lifecycle.errors import LifecycleError
from lifecycle.metrics import score
from serving.prediction_log import (
    LABEL_COLUMN,
    LabelReport,
    LogTable,
    attach_labels,
    count_rejected,
    find_request,
    read_predictions,
    summary_line,
)


def log_root(deployment: DeploymentConfig | None = None) -> Path:
    return (deployment or DeploymentConfig()).log.root()


@dataclass
class Export:
    table: LogTable
    rejected: int
    summary: str
    path: Path | None = None


def export_predictions(
    model_name: str | None,
    since: str | None = None,
    until: str | None = None,
    output: str | None = None,
    deployment: DeploymentConfig | None = None,
) -> Export:
    """The log's rows (one model or all), optionally written to a .csv or .parquet file."""
    root = log_root(deployment)
    table = read_predictions(root, model_name, since, until)
    rejected = count_rejected(root, model_name, since, until)
    path = None
    if output:
        path = Path(output)
        if path.suffix.lower() not in (".csv", ".parquet"):
            raise LifecycleError(f"--output {output}: write a .csv or .parquet file.")
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = table.frame.assign(timestamp=table.frame["timestamp"].astype(str))
        frame.to_parquet(path, index=False) if path.suffix.lower() == ".parquet" else frame.to_csv(path, index=False)
    return Export(table, rejected, summary_line(table, rejected), path)


def attach(
    model_name: str,
    truth_path: str,
    label_column: str,
    keys: list[str],
    deployment: DeploymentConfig | None = None,
) -> LabelReport:
    from lifecycle.data import read_table

    truth = read_table(truth_path)
    return attach_labels(log_root(deployment), model_name, truth, label_column, keys, source=str(truth_path))


@dataclass
class ServedBatch:
    """The rows a model's servers answered in a time window, as a monitoring batch (inputs, and the target where
    a label was attached), with live performance per version from the logged predictions."""

    path: Path
    rows: int
    labelled: int
    per_version: list[dict[str, Any]] = field(default_factory=list)

    def table(self) -> str:
        lines = ["| version | rows | labelled | live metrics (logged predictions vs labels) |", "|---:|---:|---:|---|"]
        for row in self.per_version:
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in row["metrics"].items()) or "—"
            lines.append(f"| {row['version']} | {row['rows']} | {row['labelled']} | {metrics} |")
        return "\n".join(lines)


def _labels_as_target(labels: pd.Series, task: str) -> pd.Series:
    return pd.to_numeric(labels, errors="coerce") if task == "regression" else labels


def served_batch(
    config: RunConfig,
    since: str | None = None,
    until: str | None = None,
    deployment: DeploymentConfig | None = None,
) -> ServedBatch:
    """Write what the model's servers answered (since..until) as a batch file for the monitoring pipeline, in
    the production version's schema."""
    from zenml.client import Client

    from lifecycle.names import FEATURE_SCHEMA
    from pipelines.monitoring import production_artifacts

    name = config.model.name
    production_artifacts(name)  # no production version: the error that says how to get one
    schema = Client().get_model_version(name, "production").get_artifact(FEATURE_SCHEMA).load()
    table = read_predictions(log_root(deployment), name, since, until)
    frame = table.frame
    window = f"{since or 'the start'} .. {until or 'now'}"
    if frame.empty:
        raise LifecycleError(
            f"the prediction log of `{name}` has no rows for {window}. Fix: deploy it (`python run.py deploy`) and "
            "send it requests, or widen --since/--until (`python run.py predictions` lists what is logged)."
        )
    missing = [c for c in schema.model_inputs if c not in frame.columns]
    if missing:
        raise LifecycleError(
            f"the prediction log of `{name}` does not keep the input(s) {', '.join(missing)} (configs/deployment.yaml "
            "`log.inputs`), so drift cannot be judged on them. Fix: log all inputs, or monitor a batch file "
            "(`python run.py monitor --batch FILE`)."
        )
    batch = frame[schema.model_inputs].copy()
    batch[schema.target] = _labels_as_target(frame[LABEL_COLUMN], schema.task)
    per_version = []
    for version, rows in frame.groupby(frame["model_version"].astype(str), sort=True):
        labelled = rows[rows[LABEL_COLUMN].notna() & rows["prediction"].notna()]
        metrics = {}
        if len(labelled) > 1:
            truth = _labels_as_target(labelled[LABEL_COLUMN], schema.task)
            predicted = labelled["prediction"]
            if schema.task != "regression":  # a CSV's labels and the logged predictions compared as text
                truth, predicted = truth.astype(str), predicted.astype(str)
            metrics = score(schema.task, truth, predicted.to_numpy())
        per_version.append({"version": version, "rows": len(rows), "labelled": len(labelled), "metrics": metrics})
    folder = state_dir() / "served"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-served-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%fZ}.csv"
    batch.to_csv(path, index=False)
    return ServedBatch(
        path=path, rows=len(batch), labelled=int(batch[schema.target].notna().sum()), per_version=per_version
    )


@dataclass
class Trace:
    request_id: str
    steps: list[tuple[str, str]]  # (what, value), in the order of the chain

    def text(self) -> str:
        width = max(len(what) for what, _ in self.steps)
        return "\n".join(f"{what:<{width}}  {value}" for what, value in self.steps)


def trace(request_id: str, model_name: str | None = None, deployment: DeploymentConfig | None = None) -> Trace:
    """From one served prediction back to everything that made it."""
    from zenml.client import Client

    from lifecycle.names import DEPLOY_STEP, DEPLOYMENT, DEPLOYMENT_PIPELINE, TRAINING_PIPELINE
    from workflows.runner import step_output

    rows = find_request(log_root(deployment), request_id, model_name)
    if rows.empty:
        raise LifecycleError(
            f"request `{request_id}` is not in the prediction log{f' of `{model_name}`' if model_name else ''}. "
            "Fix: check the id (servers return it as `request_id` and the X-Request-ID header); "
            "`python run.py predictions` lists what is logged."
        )
    first = rows.iloc[0]
    name, number = str(first["model_name"]), str(first["model_version"])
    predictions = ", ".join(str(v) for v in rows["prediction"].tolist()[:5]) + (" ..." if len(rows) > 5 else "")
    steps = [
        (
            "request",
            f"{request_id}: {len(rows)} row(s) at {first['timestamp']:%Y-%m-%d %H:%M:%S.%f} UTC, "
            f"{first['latency_ms']} ms",
        ),
        ("answered by", f"{first['backend']} server{(' ' + first['server']) if first.get('server') else ''}"),
        ("prediction(s)", predictions),
    ]
    labels = rows[LABEL_COLUMN].dropna().tolist() if LABEL_COLUMN in rows else []
    if labels:
        steps.append(("label(s)", ", ".join(map(str, labels[:5]))))
    client = Client()
    version = client.get_model_version(name, number)
    meta = dict(version.run_metadata)
    steps.append(("model version", f"`{name}` version {number} (id {version.id}), stage {version.stage or 'none'}"))
    training = client.list_pipeline_runs(
        model_version_id=version.id, pipeline_name=TRAINING_PIPELINE, sort_by="asc:created", size=1
    )
    if training.items:
        run = training.items[0]
        steps.append(("training run", f"{run.name} ({run.id}), {run.status}, {run.created:%Y-%m-%d %H:%M:%S}"))
    steps += [
        ("data file", str(meta.get("data_source", "?"))),
        ("data sha256", str(meta.get("data_fingerprint_sha256", "?"))),
        ("rows trained on", f"{meta.get('train_rows_after_validation', '?')} after validation"),
        ("git commit", str(meta.get("git_commit", "?"))),
        ("model", f"{meta.get('estimator', '?')} {meta.get('estimator_params', {})}, seed {meta.get('seed', '?')}"),
        ("test metrics", ", ".join(f"{k} {v:.3f}" for k, v in (meta.get("metrics") or {}).items())),
    ]
    promotion = meta.get("promotion") or {}
    if promotion:
        verdict = "promoted" if promotion.get("promoted") else "not promoted"
        steps.append(("promotion", f"{verdict}: {promotion.get('reason', '')}"))
    if training.items:
        config = training.items[0].config.parameters or {}
        steps.append(("config", ", ".join(f"{k}={v}" for k, v in _compact(config).items())))
    deployments = client.list_pipeline_runs(
        model_version_id=version.id, pipeline_name=DEPLOYMENT_PIPELINE, sort_by="desc:created", size=50
    )
    answered_at = pd.Timestamp(first["timestamp"])
    for run in deployments.items:
        created = (
            pd.Timestamp(run.created).tz_localize("UTC") if run.created.tzinfo is None else pd.Timestamp(run.created)
        )
        if created <= answered_at and DEPLOY_STEP in run.steps and run.status == "completed":
            record = step_output(run, DEPLOY_STEP, DEPLOYMENT)
            steps.append(
                (
                    "deployment",
                    f"run {run.name}: {record.get('backend')} server {record.get('name')} at "
                    f"{record.get('url')}, deployed {record.get('deployed_at')}, smoke test "
                    f"{record.get('smoke_test_rows')} rows, parity {record.get('parity_max_abs_difference')}",
                )
            )
            break
    return Trace(request_id=request_id, steps=steps)


def _compact(parameters: dict[str, Any]) -> dict[str, Any]:
    """The training run's parameters, flattened to the values a reader checks first."""
    flat: dict[str, Any] = {}
    for key, value in parameters.items():
        if isinstance(value, dict):
            for inner, item in value.items():
                if not isinstance(item, dict | list) or inner in ("time_columns", "segment_columns"):
                    flat[f"{key}.{inner}"] = item
        else:
            flat[key] = value
    return flat

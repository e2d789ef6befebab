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
from lifecycle.hints import run_hint
from lifecycle.metrics import score
from lifecycle.model_versions import loaded_artifact, metadata_dict
from serving.prediction_log_format import LABEL_COLUMN
from serving.prediction_log_labels import LabelReport, attach_labels
from serving.prediction_log_reader import (
    LogTable,
    count_rejected,
    find_request,
    read_predictions,
    summary_line,
    version_order,
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
    csv_format: Any = None,
) -> LabelReport:
    truth = read_labels(truth_path, keys or ["request_id", "row"], csv_format)
    return attach_labels(log_root(deployment), model_name, truth, label_column, keys, source=str(truth_path))


def export_lines(
    model_name: str | None,
    since: str | None,
    until: str | None,
    output: str | None,
    tail: int,
    deployment: DeploymentConfig | None = None,
) -> list[str]:
    """`python run.py predictions`: the newest `tail` rows (or where they were written), then the summary."""
    done = export_predictions(model_name, since, until, output, deployment)
    lines = []
    if done.path:
        lines.append(f"{len(done.table.frame)} rows written to {done.path}")
    elif not done.table.frame.empty:
        shown = ["timestamp", "request_id", "row", "model_version", "backend", "prediction", "label"]
        lines.append(done.table.frame[shown].tail(tail).to_string(index=False))
    return [*lines, f"{'every model' if model_name is None else f'`{model_name}`'}: {done.summary}"]


def attach_lines(
    config: RunConfig,
    truth_path: str,
    label_column: str | None,
    keys: list[str],
    deployment: DeploymentConfig | None = None,
) -> list[str]:
    """`python run.py labels`: attach the file's labels (default column: the model's target) and say how many."""
    name = config.model.name
    # A label file is read as the training data is: the dataset's `csv` settings (separator, decimal mark) apply.
    report = attach(name, truth_path, label_column or config.dataset.target, keys, deployment, config.dataset.csv)
    lines = [f"`{name}`: {report.describe()}"]
    if report.unmatched:
        lines.append(
            f"{report.unmatched} label(s) matched no logged prediction (wrong id or key, or logged before the "
            "retention window); they were not attached."
        )
    return lines


def read_labels(path: str | Path, join_columns: list[str], csv_format: Any = None) -> pd.DataFrame:
    """A label file, its join columns as the file writes them: a code 001042 stays "001042" (not the number
    1042), so it joins the code a client sent."""
    from lifecycle.data import PARQUET_SUFFIXES, read_table

    truth = read_table(path, csv_format=csv_format)
    joins = [c for c in join_columns if c in truth.columns]
    if not joins or str(path).lower().endswith(PARQUET_SUFFIXES):
        return truth
    columns = [str(c) for c in truth.columns]
    # The same file again with every cell as text, split the way read_table split it (the same header).
    for encoding in ("utf-8-sig", "utf-16", "cp1252"):
        for sep in (",", ";", "\t", "|"):
            try:
                header = pd.read_csv(path, sep=sep, encoding=encoding, nrows=0).columns
                if [str(c).strip() for c in header] != columns:
                    continue
                text = pd.read_csv(path, sep=sep, encoding=encoding, dtype=str, keep_default_na=False, na_values=[""])
            except (ValueError, UnicodeError, pd.errors.ParserError):
                continue
            if len(text) == len(truth):
                text.columns = columns
                return truth.assign(**{c: text[c].to_numpy() for c in joins})
    return truth


@dataclass
class ServedBatch:
    """The rows a model's servers answered in a time window, as a monitoring batch (inputs, and the target where
    a label was attached), with live performance per version from the logged predictions."""

    path: Path
    rows: int
    labelled: int
    per_version: list[dict[str, Any]] = field(default_factory=list)
    shadow: dict[str, Any] | None = None  # see `shadow_comparison`

    def table(self) -> str:
        lines = [
            "| version | role | rows | labelled | live metrics (logged predictions vs labels) |",
            "|---:|---|---:|---:|---|",
        ]
        for row in self.per_version:
            metrics = _metric_text(row["metrics"])
            lines.append(f"| {row['version']} | {row['role']} | {row['rows']} | {row['labelled']} | {metrics} |")
        return "\n".join(lines + self.shadow_lines())

    def shadow_lines(self) -> list[str]:
        """The shadow judged against production on the same requests."""
        found = self.shadow
        if not found:
            return []
        versions = ", ".join(found["shadow_versions"])
        lines = [
            "",
            f"Shadow (version {versions}) on the same requests as what clients got "
            f"(version {', '.join(found['answered_versions']) or '-'}): {found['paired_rows']} paired rows"
            + (
                f", {found['unpaired_shadow_rows']} shadow rows without an answered twin"
                if found["unpaired_shadow_rows"]
                else ""
            ),
        ]
        if found.get("answered_rows_without_copy"):
            lines.append(
                f"  {found['answered_rows_without_copy']} answered rows meanwhile got no shadow answer (copies "
                "dropped while the shadow lagged, or failed there)"
            )
        if "agreement" in found:
            lines.append(f"  same prediction on {found['agreement']:.1%} of them")
        if "mean_abs_difference" in found:
            mean, most = found["mean_abs_difference"], found["max_abs_difference"]
            lines.append(f"  |production - shadow|: mean {mean:.3f}, max {most:.3f}")
        if found.get("labelled_pairs"):
            production, shadow = _metric_text(found["production_metrics"]), _metric_text(found["shadow_metrics"])
            lines.append(f"  on the {found['labelled_pairs']} with labels: production {production}; shadow {shadow}")
        elif found["paired_rows"]:
            lines.append(f"  no labels yet on these rows: `{run_hint()} labels` attaches them, then compare errors")
        return lines


def _metric_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()) or "—"


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
    from pipelines.production import production_artifacts

    name = config.model.name
    production_artifacts(name)  # no production version: the error that says how to get one
    schema = loaded_artifact(Client().get_model_version(name, "production"), FEATURE_SCHEMA)
    table = read_predictions(log_root(deployment), name, since, until)
    frame = table.frame
    window = f"{since or 'the start'} .. {until or 'now'}"
    if frame.empty:
        raise LifecycleError(
            f"the prediction log of `{name}` has no rows for {window}. Fix: deploy it (`{run_hint()} deploy`) and "
            f"send it requests, or widen --since/--until (`{run_hint()} predictions` lists what is logged)."
        )
    missing = [c for c in schema.model_inputs if c not in frame.columns]
    if missing:
        raise LifecycleError(
            f"the prediction log of `{name}` does not keep the input(s) {', '.join(missing)} (configs/deployment.yaml "
            "`log.inputs`), so drift cannot be judged on them. Fix: log all inputs, or monitor a batch file "
            f"(`{run_hint()} monitor --batch FILE`)."
        )
    answered = frame[frame["role"] != "shadow"]  # what clients got: a shadow's copies are judged, not monitored
    batch = answered[schema.model_inputs].copy()
    batch[schema.target] = _labels_as_target(answered[LABEL_COLUMN], schema.task)
    per_version = []
    groups = frame.groupby([frame["model_version"].astype(str), frame["role"]], sort=True)
    for (version, role), rows in sorted(groups, key=lambda group: (version_order(group[0][0]), group[0][1])):
        labelled = rows[rows[LABEL_COLUMN].notna() & rows["prediction"].notna()]
        per_version.append(
            {
                "version": version,
                "role": role,
                "rows": len(rows),
                "labelled": len(labelled),
                "metrics": _labelled_metrics(labelled, schema.task),
            }
        )
    folder = state_dir() / "served"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-served-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%fZ}.csv"
    batch.to_csv(path, index=False)
    return ServedBatch(
        path=path,
        rows=len(batch),
        labelled=int(batch[schema.target].notna().sum()),
        per_version=per_version,
        shadow=shadow_comparison(frame, schema.task),
    )


def _labelled_metrics(labelled: pd.DataFrame, task: str) -> dict[str, float]:
    """The logged predictions scored against their attached labels (two rows at least)."""
    if len(labelled) < 2:
        return {}
    truth = _labels_as_target(labelled[LABEL_COLUMN], task)
    predicted = labelled["prediction"]
    if task != "regression":  # a CSV's labels and the logged predictions compared as text
        truth, predicted = truth.astype(str), predicted.astype(str)
    return score(task, truth, predicted.to_numpy())


def shadow_comparison(frame: pd.DataFrame, task: str) -> dict[str, Any] | None:
    """The shadow's answers beside the ones clients got for the same requests (production's, or a canary's; paired
    on request id and row): how often they agree (classification) or how far apart they are (regression), and
    each one's metrics on the paired rows that have labels. None when nothing was shadowed."""
    shadow = frame[frame["role"] == "shadow"]
    if shadow.empty:
        return None
    keys = ["request_id", "row"]
    answered = frame[frame["role"] != "shadow"]  # what clients got: production's answer, or a canary's
    pairs = answered.merge(shadow, on=keys, suffixes=("", "_shadow"))
    # answered rows while the shadow was answering, whose copy it never answered (dropped when it lagged)
    span = answered[answered["timestamp"].between(shadow["timestamp"].min(), shadow["timestamp"].max())]
    result: dict[str, Any] = {
        "shadow_versions": sorted(shadow["model_version"].astype(str).unique(), key=version_order),
        "answered_versions": sorted(pairs["model_version"].astype(str).unique(), key=version_order),
        "shadow_rows": len(shadow),
        "paired_rows": len(pairs),
        "unpaired_shadow_rows": len(shadow) - len(pairs),
        "answered_rows_without_copy": len(span) - len(span.merge(shadow[keys], on=keys)),
    }
    if pairs.empty:
        return result
    if task == "regression":
        gap = (pd.to_numeric(pairs["prediction"]) - pd.to_numeric(pairs["prediction_shadow"])).abs()
        result["mean_abs_difference"] = float(gap.mean())
        result["max_abs_difference"] = float(gap.max())
    else:
        result["agreement"] = float((pairs["prediction"].astype(str) == pairs["prediction_shadow"].astype(str)).mean())
    labelled = pairs[pairs[LABEL_COLUMN].notna()]
    result["labelled_pairs"] = len(labelled)
    result["production_metrics"] = _labelled_metrics(labelled, task)
    result["shadow_metrics"] = _labelled_metrics(labelled.assign(prediction=labelled["prediction_shadow"]), task)
    return result


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
            f"`{run_hint()} predictions` lists what is logged."
        )
    answered, shadow = answers(rows)
    first = answered.iloc[0]
    name, number = str(first["model_name"]), str(first["model_version"])
    steps = [
        (
            "request",
            f"{request_id}: {len(answered)} row(s) at {first['timestamp']:%Y-%m-%d %H:%M:%S.%f} UTC, "
            f"{first['latency_ms']} ms",
        ),
        ("answered by", f"{_server_text(first)}, version {number}"),
        ("prediction(s)", _predictions_text(answered)),
    ]
    if first.get("role") == "shadow":
        steps.append(("note", "only a shadow's answer is logged: no answer the client got is in the log"))
    labels = answered[LABEL_COLUMN].dropna().tolist() if LABEL_COLUMN in answered else []
    if labels:
        steps.append(("label(s)", ", ".join(map(str, labels[:5]))))
    for _, copy in shadow.groupby(["model_version", "server", "backend"], sort=False, dropna=False):
        steps.append(
            (
                "shadow's answer",
                f"{_server_text(copy.iloc[0])}, version {copy.iloc[0]['model_version']} (never sent to the client): "
                + _predictions_text(copy),
            )
        )
    if rows.attrs.get("broken_lines"):
        steps.append(("unreadable", f"{rows.attrs['broken_lines']} torn line(s) mentioning this request skipped"))
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
        ("test metrics", ", ".join(f"{k} {v:.3f}" for k, v in metadata_dict(meta, "metrics").items())),
    ]
    promotion = metadata_dict(meta, "promotion")
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


def answers(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A request's logged rows split into the answer the client got (production's or a canary's: the earliest,
    should a client have sent the id twice) and the shadow's copies; a request only a shadow's rows remain of
    is described by those."""
    roles = rows["role"].fillna("production") if "role" in rows else pd.Series("production", index=rows.index)
    shadow = rows[roles == "shadow"].sort_values(["timestamp", "row"], kind="stable")
    answered = rows[roles != "shadow"].sort_values(["timestamp", "row"], kind="stable")
    if answered.empty:
        return shadow, shadow.iloc[0:0]
    first = answered.iloc[0]
    servers = answered["server"].fillna("") if "server" in answered else pd.Series("", index=answered.index)
    same = (servers == (first.get("server") or "")) & (
        answered["model_version"].astype(str) == str(first["model_version"])
    )
    return answered[same & (answered["timestamp"] == first["timestamp"])], shadow


def _server_text(row: pd.Series) -> str:
    server = f" {row['server']}" if isinstance(row.get("server"), str) and row.get("server") else ""
    role = row.get("role") if isinstance(row.get("role"), str) else "production"
    return f"{row['backend']} server{server} ({role})"


def _predictions_text(rows: pd.DataFrame) -> str:
    return ", ".join(str(v) for v in rows["prediction"].tolist()[:5]) + (" ..." if len(rows) > 5 else "")


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

"""Running the training and monitoring pipelines and collecting what they decided."""

from __future__ import annotations

import fcntl
import re
from dataclasses import dataclass
from pathlib import Path

from zenml import Model
from zenml.client import Client
from zenml.models import PipelineRunResponse

from lifecycle.config import PROJECT_ROOT, DeploymentConfig, MonitoringConfig, RunConfig
from lifecycle.data import read_table
from lifecycle.errors import PipelineFailed
from lifecycle.metrics import EvaluationReport
from lifecycle.monitoring import MonitoringSummary
from lifecycle.names import (
    DATA_QUALITY,
    DEPLOY_STEP,
    DEPLOYMENT,
    DEPLOYMENT_PIPELINE,
    DRIFT_REPORT,
    DRIFT_STEP,
    EVALUATE_STEP,
    EVALUATION,
    MONITORING_SUMMARY,
    PROMOTE_STEP,
    PROMOTION,
    SUMMARY_STEP,
    VALIDATE_STEP,
)
from lifecycle.promotion import PromotionDecision
from lifecycle.validation import DataQualityReport
from pipelines.training import training_pipeline
from stacks.capabilities import StackCapabilities, active_capabilities, check_usable, prepare_local_mlflow
from workflows.zenml_tuning import cache_package_lookups


@dataclass
class TrainingOutcome:
    run: PipelineRunResponse
    model_name: str
    model_version: str
    evaluation: EvaluationReport
    data_quality: DataQualityReport
    decision: PromotionDecision
    production_version: str | None
    mlflow_links: dict[str, str]
    stack: str


def step_output(run: PipelineRunResponse, step_name: str, artifact_name: str):
    outputs = run.steps[step_name].outputs[artifact_name]
    return (outputs[0] if isinstance(outputs, list) else outputs).load()


def production_version(model_name: str, stage: str = "production") -> str | None:
    try:
        return str(Client().get_model_version(model_name, stage).number)
    except KeyError:
        return None


def ready_stack() -> StackCapabilities:
    """Before any pipeline run: what the active stack offers, checked usable (integrations, servers)."""
    cache_package_lookups()
    capabilities = active_capabilities()
    check_usable(capabilities)
    return capabilities


def run_training(config: RunConfig) -> TrainingOutcome:
    capabilities = ready_stack()
    prepare_tracking(capabilities)
    model = Model(name=config.model.name, description=config.model.description, tags=config.model.tags)
    pipeline = training_pipeline.with_options(
        model=model, enable_cache=config.enable_cache, steps=capabilities.step_options()
    )
    try:
        started = pipeline(
            dataset=config.dataset,
            split=config.split,
            training=config.training,
            evaluation=config.evaluation,
            promotion=config.promotion,
        )
    except RuntimeError as exc:  # ZenML's "Pipeline run has failed due to failure in step(s): ..."
        raise PipelineFailed(f"{exc}. The failing step's error is in the log above; nothing was promoted.") from exc
    run = Client().get_pipeline_run(started.id)  # re-read: the returned object predates the steps
    return TrainingOutcome(
        run=run,
        model_name=config.model.name,
        model_version=str(run.model_version.number) if run.model_version else "?",
        evaluation=step_output(run, EVALUATE_STEP, EVALUATION),
        data_quality=step_output(run, VALIDATE_STEP, DATA_QUALITY),
        decision=step_output(run, PROMOTE_STEP, PROMOTION),
        production_version=production_version(config.model.name, config.promotion.stage),
        mlflow_links=dict(mlflow_links(config.model.name, run)),
        stack=capabilities.stack,
    )


def prepare_tracking(capabilities: StackCapabilities) -> None:
    """`prepare_local_mlflow`, one process at a time: two runs started together on a new SQLite database would
    both create and migrate it, and one of them fails half-way (alembic: "expected to match one row")."""
    uri = capabilities.tracking_uri or ""
    if not uri.startswith("sqlite:///"):
        prepare_local_mlflow(capabilities)
        return
    folder = Path(uri.removeprefix("sqlite:///")).parent
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "prepare.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        prepare_local_mlflow(capabilities)


def mlflow_links(model_name: str, run: PipelineRunResponse) -> dict[str, str]:
    """What the run mirrored to MLflow (empty on a stack without MLflow)."""
    if not run.model_version:
        return {}
    version = Client().get_model_version(model_name, run.model_version.number)
    return version.run_metadata.get("mlflow", {}) or {}


@dataclass
class MonitoringOutcome:
    run: PipelineRunResponse
    summary: MonitoringSummary
    report_path: Path
    summary_path: Path


def run_monitoring(
    model_name: str, batch_path: str, monitoring: MonitoringConfig, retrain_on_demand: bool = False
) -> MonitoringOutcome:
    """Monitor one batch against the production model; write the HTML report and JSON summary to reports/."""
    from zenml.enums import ModelStages

    from pipelines.monitoring import monitoring_pipeline

    ready_stack()
    read_table(batch_path, allow_empty=True)  # an unreadable or missing file fails here, with its fix
    pipeline = monitoring_pipeline.with_options(model=Model(name=model_name, version=ModelStages.PRODUCTION))
    try:
        started = pipeline(
            model_name=model_name,
            batch_path=str(Path(batch_path).resolve()),
            policy=monitoring.policy,
            retrain_on_demand=retrain_on_demand,
        )
    except RuntimeError as exc:
        raise PipelineFailed(f"{exc}. The failing step's error is in the log above.") from exc
    run = Client().get_pipeline_run(started.id)
    summary = step_output(run, SUMMARY_STEP, MONITORING_SUMMARY)
    folder = reports_folder(monitoring) / "monitoring" / model_name
    folder.mkdir(parents=True, exist_ok=True)
    report_path = folder / f"{run.name}.html"
    report_path.write_text(str(step_output(run, DRIFT_STEP, DRIFT_REPORT)))
    summary_path = folder / f"{run.name}.json"
    summary_path.write_text(summary.model_dump_json(indent=2))
    return MonitoringOutcome(run=run, summary=summary, report_path=report_path, summary_path=summary_path)


def reports_folder(monitoring: MonitoringConfig) -> Path:
    """The config's reports folder (relative to the project root); MLOPS_REPORTS_DIR overrides it."""
    import os

    folder = Path(os.environ.get("MLOPS_REPORTS_DIR", monitoring.reports_dir))
    return folder if folder.is_absolute() else PROJECT_ROOT / folder


def retraining_data(config: RunConfig, batch_path: str, window_days: int, end=None) -> Path:
    """The newest labelled data for retraining: the configured dataset plus the batch's labelled rows, cut to
    the newest `window_days` when the data has time columns. Written to the state folder as a CSV."""
    import pandas as pd

    from lifecycle.windows import newest_window, time_index
    from stacks.manage import state_dir

    base = read_table(config.dataset.path)
    batch = read_table(batch_path, allow_empty=True)
    if config.dataset.target in batch.columns:
        batch = batch[batch[config.dataset.target].notna()]
        base = pd.concat([base, batch[[c for c in batch.columns if c in base.columns]]], ignore_index=True)
    if config.dataset.time_columns:
        times = time_index(base, config.dataset)
        base = newest_window(base, times, end or (times.max() + pd.Timedelta(seconds=1)), window_days)
    folder = state_dir() / "retraining"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config.model.name}-{pd.Timestamp.now():%Y%m%d-%H%M%S-%f}.csv"
    base.to_csv(path, index=False)
    return path


_RAISED = re.compile(r"^[\w.]+(Error|Exception|Failed): ")


def failed_step_reason(run: PipelineRunResponse) -> str:
    """The exception message of the run's failed step, when ZenML recorded it."""
    for step_run in run.steps.values():
        info = getattr(step_run, "exception_info", None)
        if info is not None and getattr(info, "traceback", None):
            raised = [line for line in info.traceback.splitlines() if _RAISED.match(line)]
            if raised:
                return raised[-1].split(": ", 1)[-1]
    return ""


def run_deployment(
    model_name: str, deployment: DeploymentConfig, port: int | None = None, timeout: int | None = None
) -> dict:
    """Serve the model's production version on the active stack; returns what was recorded on the version."""
    from zenml.enums import ModelStages

    from pipelines.deployment import deployment_pipeline

    ready_stack()
    from pipelines.monitoring import production_artifacts

    production_artifacts(model_name)  # no production version: a clear error before any run is recorded
    pipeline = deployment_pipeline.with_options(model=Model(name=model_name, version=ModelStages.PRODUCTION))
    try:
        started = pipeline(model_name=model_name, deployment=deployment, port=port, timeout=timeout)
    except RuntimeError as exc:
        runs = Client().list_pipeline_runs(pipeline_name=DEPLOYMENT_PIPELINE, sort_by="desc:created", size=1)
        reason = failed_step_reason(runs.items[0]) if runs.items else ""
        raise PipelineFailed(f"deployment failed: {reason or exc}") from exc
    run = Client().get_pipeline_run(started.id)
    return step_output(run, DEPLOY_STEP, DEPLOYMENT)


def redeploy_if_serving(model_name: str, deployment: DeploymentConfig) -> dict | None:
    """After a promotion: replace the model's running server on the active stack with the new production
    version (None when nothing serves the model here: nothing is started)."""
    from serving.stack_backend import active_backend

    if not [e for e in active_backend().endpoints(model_name) if e.running]:
        return None
    return run_deployment(model_name, deployment)

import subprocess
from typing import Annotated

import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.metadata.metadata_types import MetadataType
from zenml.utils.source_utils import get_source_root

from lifecycle.config import TrainingConfig, load_deployment_config
from lifecycle.metrics import EvaluationReport
from lifecycle.modeling import calendar_parts
from lifecycle.mojo_model import MojoModel, TrainedModel
from lifecycle.names import CALENDAR_FEATURES
from lifecycle.tracking import active_run_id, as_plain_columns, log_metrics, log_params
from lifecycle.trainers import describe_model
from lifecycle.validation import DataQualityReport, FeatureSchema
from serving.backends.mlflow import LoggedModel, log_and_register
from stacks.capabilities import mlflow_registry, mlflow_tracking_enabled


def git_commit(directory: str) -> str:
    """The commit the code ran from, `+dirty` when uncommitted changes were present, or `unknown`."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if status else commit


def mirror_to_mlflow(
    model: TrainedModel,
    schema: FeatureSchema,
    example: pd.DataFrame,
    report: EvaluationReport,
    params: dict,
    description: str,
) -> dict[str, str]:
    """Log params, metrics and model to the active MLflow run and, where the stack has the registry, register
    a version that points back to this Model Control Plane version. Returns the links, for the MCP metadata.

    Done here, in a step that is never cached, so every run's MLflow record is complete even when training
    and evaluation came from the cache."""
    import mlflow  # here: importing it takes seconds, and only a stack that tracks with MLflow gets this far

    context = get_step_context()
    mcp = context.model
    log_params(params)
    segments = {f"segment.{s.column}.{s.value}": s.metrics for s in report.segments if s.metrics}
    log_metrics({**report.metrics, "baseline": report.baseline_metrics, **segments})
    mlflow_tags = {"zenml_model_name": mcp.name, "zenml_model_version": str(mcp.number)}
    mlflow.set_tags(mlflow_tags)
    registry = mlflow_registry()
    tags = {
        **mlflow_tags,
        "zenml_model_version_id": str(mcp.id),
        "zenml_pipeline_name": context.pipeline.name,
        "zenml_run_name": context.pipeline_run.name,
        "zenml_pipeline_run_id": str(context.pipeline_run.id),
    }
    client = registry.mlflow_client if registry is not None else None
    # Served by MLflow with the project's serving settings (a deploy may override its log settings).
    logged = LoggedModel(model, schema, mcp.name, str(mcp.number), load_deployment_config())
    return log_and_register(logged, example, client, active_run_id(), tags, description)


def estimator_class(model: TrainedModel) -> str:
    return f"H2O {model.algorithm}" if isinstance(model, MojoModel) else type(model[-1]).__name__


@step(enable_cache=False)
def register_model(
    model: TrainedModel,
    test_set: pd.DataFrame,
    evaluation_report: EvaluationReport,
    feature_schema: FeatureSchema,
    data_quality_report: DataQualityReport,
    training: TrainingConfig,
    data_fingerprint: str,
) -> Annotated[str, "model_version"]:
    """Record on the Model Control Plane version what is needed to trust and reproduce the model; on a stack
    with MLflow, log the model there too and link the MLflow registry version both ways."""
    mcp = get_step_context().model
    estimator, estimator_params = describe_model(model, training)
    metadata: dict[str, MetadataType] = {
        "task": feature_schema.task,
        "target": feature_schema.target,
        "model_inputs": feature_schema.model_inputs,
        "metrics": evaluation_report.metrics,
        "baseline_metrics": evaluation_report.baseline_metrics,
        "primary_metric": evaluation_report.primary_metric,
        "estimator": estimator,
        "estimator_params": estimator_params,
        CALENDAR_FEATURES: {} if isinstance(model, MojoModel) else calendar_parts(model),
        "param_grid": training.estimator.param_grid,
        "seed": training.seed,
        "data_source": data_quality_report.source,
        "data_fingerprint_sha256": data_fingerprint,
        "train_rows_after_validation": data_quality_report.rows_out,
        "git_commit": git_commit(str(get_source_root())),
    }
    if mlflow_tracking_enabled():
        example = as_plain_columns(test_set[feature_schema.model_inputs].head(5))
        params = {
            "task": feature_schema.task,
            "seed": training.seed,
            "estimator": estimator_class(model),
            "estimator_params": estimator_params if isinstance(model, MojoModel) else model[-1].get_params(),
            "preprocessing": training.preprocessing.model_dump(),
            "data_fingerprint_sha256": data_fingerprint,
        }
        description = f"{mcp.name} version {mcp.number} ({mcp.id})"
        metadata["mlflow"] = mirror_to_mlflow(model, feature_schema, example, evaluation_report, params, description)
    log_metadata(metadata=metadata, model_name=mcp.name, model_version=str(mcp.number))
    return str(mcp.number)

"""Running the training pipeline from a RunConfig and collecting what it decided."""

from __future__ import annotations

from dataclasses import dataclass

from zenml import Model
from zenml.client import Client
from zenml.models import PipelineRunResponse

from lifecycle.config import RunConfig
from lifecycle.errors import PipelineFailed
from lifecycle.metrics import EvaluationReport
from lifecycle.names import DATA_QUALITY, EVALUATE_STEP, EVALUATION, PROMOTE_STEP, PROMOTION, VALIDATE_STEP
from lifecycle.promotion import PromotionDecision
from lifecycle.validation import DataQualityReport
from pipelines.training import training_pipeline
from stacks.capabilities import active_capabilities, check_usable, prepare_local_mlflow


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


def run_training(config: RunConfig) -> TrainingOutcome:
    capabilities = active_capabilities()
    check_usable(capabilities)
    prepare_local_mlflow(capabilities)
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


def mlflow_links(model_name: str, run: PipelineRunResponse) -> dict[str, str]:
    """What the run mirrored to MLflow (empty on a stack without MLflow)."""
    if not run.model_version:
        return {}
    version = Client().get_model_version(model_name, run.model_version.number)
    return version.run_metadata.get("mlflow", {}) or {}

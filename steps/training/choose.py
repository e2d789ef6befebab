"""With challengers: the configured estimator and the AutoML leader scored on the same test rows; the better one
becomes this run's model (`lifecycle.trainers`), the comparison is kept beside it."""

from typing import Annotated, Any

import pandas as pd
from zenml import ArtifactConfig, log_metadata, step
from zenml.enums import ArtifactType

from lifecycle.config import EvaluationConfig, TrainingConfig
from lifecycle.mojo_model import TrainedModel
from lifecycle.names import MODEL, TRAINER_COMPARISON
from lifecycle.trainers import CONFIGURED, TrainerComparison, choose_trainer
from lifecycle.validation import FeatureSchema


@step
def choose_model(
    configured_model: TrainedModel,
    configured_seconds: float,
    automl_model: TrainedModel,
    automl_seconds: float,
    leaderboard: pd.DataFrame,
    test_set: pd.DataFrame,
    feature_schema: FeatureSchema,
    training: TrainingConfig,
    evaluation: EvaluationConfig,
    primary_metric: str | None = None,
) -> tuple[
    Annotated[Any, ArtifactConfig(name=MODEL, artifact_type=ArtifactType.MODEL)],
    Annotated[TrainerComparison, TRAINER_COMPARISON],
]:
    """The better of the trained models on the primary metric; both trainers' figures recorded."""
    models = {CONFIGURED: (configured_model, configured_seconds), "h2o_automl": (automl_model, automl_seconds)}
    chosen, comparison = choose_trainer(
        models, test_set, feature_schema, training, primary_metric, evaluation.bootstrap_resamples
    )
    top = leaderboard.head(10).round(6).astype(object).where(leaderboard.head(10).notna(), None)
    log_metadata(metadata={"chosen_trainer": chosen, "reason": comparison.reason})
    log_metadata(
        metadata={
            "trainer": chosen,
            "trainer_comparison": comparison.model_dump(mode="json"),
            "automl_leaderboard": top.to_dict(orient="records"),
        },
        infer_model=True,
    )
    return models[chosen][0], comparison

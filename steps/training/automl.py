"""The H2O AutoML challenger's step: a local H2O cluster for the search, stopped after it (`lifecycle.automl`)."""

from typing import Annotated

import pandas as pd
from zenml import ArtifactConfig, log_metadata, step
from zenml.enums import ArtifactType

from lifecycle.automl import train_automl
from lifecycle.config import TrainingConfig
from lifecycle.mojo_model import MojoModel
from lifecycle.names import AUTOML_LEADERBOARD, AUTOML_MODEL
from lifecycle.validation import FeatureSchema


@step
def train_automl_challenger(
    train_set: pd.DataFrame, feature_schema: FeatureSchema, training: TrainingConfig, primary_metric: str | None = None
) -> tuple[
    Annotated[MojoModel, ArtifactConfig(name=AUTOML_MODEL, artifact_type=ArtifactType.MODEL)],
    Annotated[pd.DataFrame, AUTOML_LEADERBOARD],
    Annotated[float, "automl_train_seconds"],
]:
    """H2O AutoML on the same training rows; its leader as a MOJO model, and the leaderboard."""
    result = train_automl(train_set, feature_schema, training, primary_metric or "")
    log_metadata(
        metadata={
            "leader": result.model.model_id,
            "algorithm": result.model.algorithm,
            "models_built": len(result.leaderboard),
            "train_seconds": round(result.train_seconds, 2),
            "settings": training.h2o_automl.model_dump(),
        }
    )
    return result.model, result.leaderboard, result.train_seconds

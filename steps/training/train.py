from typing import Annotated

import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import ArtifactConfig, log_metadata, step
from zenml.enums import ArtifactType

from lifecycle.config import TrainingConfig
from lifecycle.modeling import fit_model
from lifecycle.names import MODEL
from lifecycle.validation import FeatureSchema


@step
def train_model(
    train_set: pd.DataFrame, feature_schema: FeatureSchema, training: TrainingConfig
) -> Annotated[Pipeline, ArtifactConfig(name=MODEL, artifact_type=ArtifactType.MODEL)]:
    """Fit one sklearn Pipeline (preprocessing + estimator), seeded."""
    model, chosen_params = fit_model(train_set, feature_schema, training)
    log_metadata(
        metadata={
            "estimator": type(model.named_steps["estimator"]).__name__,
            "estimator_params": chosen_params,
            "seed": training.seed,
            "train_rows": len(train_set),
        }
    )
    return model

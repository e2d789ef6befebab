import time
from typing import Annotated

import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import ArtifactConfig, log_metadata, step
from zenml.enums import ArtifactType

from lifecycle.config import TrainingConfig
from lifecycle.modeling import fit_model
from lifecycle.names import CONFIGURED_MODEL, MODEL
from lifecycle.validation import FeatureSchema


def _fit_and_record(train_set: pd.DataFrame, feature_schema: FeatureSchema, training: TrainingConfig) -> Pipeline:
    started = time.perf_counter()
    model, chosen_params = fit_model(train_set, feature_schema, training)
    log_metadata(
        metadata={
            "estimator": type(model.named_steps["estimator"]).__name__,
            "estimator_params": chosen_params,
            "seed": training.seed,
            "train_rows": len(train_set),
            "train_seconds": round(time.perf_counter() - started, 2),
        }
    )
    return model


@step
def train_model(
    train_set: pd.DataFrame, feature_schema: FeatureSchema, training: TrainingConfig
) -> Annotated[Pipeline, ArtifactConfig(name=MODEL, artifact_type=ArtifactType.MODEL)]:
    """Fit one sklearn Pipeline (preprocessing + estimator), seeded."""
    return _fit_and_record(train_set, feature_schema, training)


@step
def train_configured_model(
    train_set: pd.DataFrame, feature_schema: FeatureSchema, training: TrainingConfig
) -> tuple[
    Annotated[Pipeline, ArtifactConfig(name=CONFIGURED_MODEL, artifact_type=ArtifactType.MODEL)],
    Annotated[float, "configured_train_seconds"],
]:
    """The configured estimator when challengers are trained beside it (`choose_model` picks the candidate)."""
    started = time.perf_counter()
    model = _fit_and_record(train_set, feature_schema, training)
    return model, time.perf_counter() - started

from typing import Annotated

import pandas as pd
from zenml import get_step_context, log_metadata, step

from lifecycle.mojo_model import TrainedModel
from lifecycle.monitoring import predict_rows
from lifecycle.names import PREDICTIONS
from lifecycle.validation import FeatureSchema


@step
def predict_batch(
    model: TrainedModel, checked_batch: pd.DataFrame, feature_schema: FeatureSchema
) -> Annotated[pd.DataFrame, PREDICTIONS]:
    """Batch predictions with the production model; rows that cannot be predicted keep an empty prediction."""
    predictions = predict_rows(model, checked_batch, feature_schema)
    model_version = get_step_context().model
    log_metadata(
        metadata={
            "model_name": model_version.name,
            "model_version": str(model_version.number),
            "predicted_rows": int(predictions["prediction"].notna().sum()),
        },
        infer_artifact=True,
    )
    return predictions

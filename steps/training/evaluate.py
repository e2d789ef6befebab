from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from lifecycle.config import EvaluationConfig
from lifecycle.metrics import EvaluationReport, evaluate_model
from lifecycle.mojo_model import TrainedModel
from lifecycle.names import EVALUATION
from lifecycle.validation import FeatureSchema


@step
def evaluate(
    model: TrainedModel,
    train_set: pd.DataFrame,
    test_set: pd.DataFrame,
    feature_schema: FeatureSchema,
    evaluation: EvaluationConfig,
    primary_metric: str | None = None,
) -> Annotated[EvaluationReport, EVALUATION]:
    """Metrics on the test set, per segment, and for a naive baseline on the same rows."""
    report = evaluate_model(model, train_set, test_set, feature_schema, evaluation, primary_metric)
    log_metadata(
        metadata={
            "metrics": report.metrics,
            "baseline_metrics": report.baseline_metrics,
            "flagged_segments": [f"{s.column}={s.value} ({s.gap:+.0%})" for s in report.flagged_segments],
        }
    )
    return report

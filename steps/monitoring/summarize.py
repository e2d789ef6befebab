from typing import Annotated

import pandas as pd
from zenml import get_step_context, log_metadata, step

from lifecycle.metrics import EvaluationReport
from lifecycle.monitoring import (
    BatchCheck,
    DriftSummary,
    MonitoringPolicy,
    MonitoringSummary,
    decide_retraining,
    performance_on_batch,
)
from lifecycle.names import MONITORING_SUMMARY
from lifecycle.validation import FeatureSchema


@step(enable_cache=False)
def summarize_monitoring(
    predictions: pd.DataFrame,
    batch_check: BatchCheck,
    drift_summary: DriftSummary,
    feature_schema: FeatureSchema,
    evaluation_report: EvaluationReport,
    policy: MonitoringPolicy,
    batch_source: str,
    retrain_on_demand: bool = False,
) -> Annotated[MonitoringSummary, MONITORING_SUMMARY]:
    """Performance against the model's own test metrics, and whether to retrain — with the reasons."""
    performance = performance_on_batch(
        predictions, feature_schema, evaluation_report.metrics, evaluation_report.primary_metric
    )
    decision = decide_retraining(batch_check, drift_summary, performance, policy, on_demand=retrain_on_demand)
    model = get_step_context().model
    summary = MonitoringSummary(
        model_name=model.name,
        model_version=str(model.number),
        batch_source=batch_source,
        batch=batch_check,
        drift=drift_summary,
        performance=performance,
        decision=decision,
    )
    log_metadata(metadata={"monitoring": summary.model_dump(mode="json")})
    return summary

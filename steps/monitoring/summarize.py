from datetime import datetime, timezone
from typing import Annotated

import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.client import Client

from lifecycle.metrics import EvaluationReport
from lifecycle.model_versions import metadata_list
from lifecycle.monitoring import (
    HISTORY_KEPT,
    MONITORING_HISTORY,
    BatchCheck,
    DriftSummary,
    MonitoringPolicy,
    MonitoringSummary,
    decide_retraining,
    history_entry,
    performance_on_batch,
)
from lifecycle.names import MONITORING_SUMMARY
from lifecycle.validation import FeatureSchema
from stacks.store_lock import store_lock


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
    record_history(summary, get_step_context().pipeline_run.name)
    return summary


def record_history(summary: MonitoringSummary, run_name: str) -> None:
    """Append this run to the monitored version's history (one writer per model at a time)."""
    with store_lock(f"monitoring-history-{summary.model_name}"):
        version = Client().get_model_version(summary.model_name, summary.model_version)
        history = metadata_list(version.run_metadata, MONITORING_HISTORY)
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        history = [*history, history_entry(summary, run_name, at)][-HISTORY_KEPT:]
        log_metadata(
            metadata={MONITORING_HISTORY: history},
            model_name=summary.model_name,
            model_version=summary.model_version,
        )

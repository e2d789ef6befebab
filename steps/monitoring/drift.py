from typing import Annotated

import pandas as pd
from zenml import log_metadata, step
from zenml.types import HTMLString

from lifecycle.monitoring import DriftSummary, MonitoringPolicy, run_drift_report
from lifecycle.names import DRIFT_REPORT, DRIFT_SUMMARY
from lifecycle.validation import FeatureSchema


@step
def drift_report(
    train_set: pd.DataFrame, checked_batch: pd.DataFrame, feature_schema: FeatureSchema, policy: MonitoringPolicy
) -> tuple[Annotated[HTMLString, DRIFT_REPORT], Annotated[DriftSummary, DRIFT_SUMMARY]]:
    """Evidently data drift and data summary of the batch against the training (reference) set."""
    html, summary = run_drift_report(train_set, checked_batch, feature_schema, policy.min_rows_for_drift)
    log_metadata(metadata={"drift_share": summary.share, "drifted_columns": summary.drifted_columns})
    return HTMLString(html), summary

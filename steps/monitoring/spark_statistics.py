from typing import Annotated, Any

import numpy as np
import pandas as pd
from zenml import log_metadata, step

from lifecycle.batch_statistics import ColumnCounts, SecondPass, drift_from_counts, seeded_sample, statistics_on_spark
from lifecycle.config import MonitoringPolicy, SparkConfig
from lifecycle.monitoring import BatchCheck, DriftSummary
from lifecycle.names import BATCH_COUNTS, BATCH_SAMPLE, DRIFT_SUMMARY, WHOLE_BATCH_CHECK
from lifecycle.spark_engine import spark_session, stop_session
from lifecycle.validation import FeatureSchema


@step(enable_cache=False)
def batch_statistics_on_spark(
    train_set: pd.DataFrame, feature_schema: FeatureSchema, batch_path: str, master_url: str, spark: dict[str, Any]
) -> tuple[
    Annotated[BatchCheck, WHOLE_BATCH_CHECK],
    Annotated[pd.DataFrame, BATCH_SAMPLE],
    Annotated[dict[str, Any], BATCH_COUNTS],
]:
    """Drive two passes over the whole batch on the cluster (the batch check per slice, added up; per-column
    counts, then histograms or counts at the reference's values), and draw a seeded sample for the Evidently
    report and the performance figures."""
    settings = SparkConfig(**spark)
    session = spark_session(master_url, settings, app_name="monitor")
    try:
        check, columns, second, frame, kind, header = statistics_on_spark(
            session, batch_path, feature_schema, train_set, settings.histogram_bins
        )
        sample = seeded_sample(
            session,
            frame,
            kind,
            header,
            feature_schema,
            check.rows,
            settings.monitor_sample_rows,
            settings.monitor_sample_seed,
        )
    finally:
        stop_session(session)
    counts = {
        "rows": check.rows,
        "sample_rows": len(sample),
        "columns": {c: {**v.__dict__, "low": _finite(v.low), "high": _finite(v.high)} for c, v in columns.items()},
        "second_pass": second.as_dict(),
    }
    log_metadata(metadata={"rows": check.rows, "sample_rows": len(sample), "master_url": master_url})
    return check, sample, counts


@step
def whole_batch_drift(
    train_set: pd.DataFrame,
    feature_schema: FeatureSchema,
    batch_counts: dict[str, Any],
    sample_drift: DriftSummary,
    policy: MonitoringPolicy,
) -> Annotated[DriftSummary, DRIFT_SUMMARY]:
    """The drift verdicts over the whole batch from its counts (the sample's only for a column they cannot judge)."""
    summary = drift_from_counts(
        train_set,
        feature_schema,
        {c: ColumnCounts(**v) for c, v in batch_counts["columns"].items()},
        SecondPass.from_dict(batch_counts["second_pass"]),
        batch_counts["rows"],
        policy.min_rows_for_drift,
        sample_drift,
        batch_counts["sample_rows"],
    )
    log_metadata(metadata={"drift_share": summary.share, "drifted_columns": summary.drifted_columns})
    return summary


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None

"""Monitoring pipeline: a new batch against the production model — checks, predictions, drift, performance."""

from typing import Any

from zenml import pipeline

from lifecycle.data import file_fingerprint
from lifecycle.monitoring import MonitoringPolicy
from lifecycle.names import MONITORING_PIPELINE, SPARK_MONITORING_PIPELINE
from pipelines.production import production_artifacts
from steps.monitoring.batch import check_batch_step, load_batch
from steps.monitoring.drift import drift_report
from steps.monitoring.predict import predict_batch
from steps.monitoring.spark_statistics import batch_statistics_on_spark, whole_batch_drift
from steps.monitoring.summarize import summarize_monitoring


@pipeline(name=MONITORING_PIPELINE, enable_cache=False)
def monitoring_pipeline(
    model_name: str, batch_path: str, policy: MonitoringPolicy, retrain_on_demand: bool = False
) -> None:
    production = production_artifacts(model_name)
    batch = load_batch(
        path=batch_path, fingerprint=file_fingerprint(batch_path), feature_schema=production["feature_schema"]
    )
    checked, check = check_batch_step(batch, production["feature_schema"], production["train_set"])
    predictions = predict_batch(production["model"], checked, production["feature_schema"])
    _, drift = drift_report(production["train_set"], checked, production["feature_schema"], policy=policy)
    summarize_monitoring(
        predictions,
        check,
        drift,
        production["feature_schema"],
        production["evaluation_report"],
        policy=policy,
        batch_source=batch_path,
        retrain_on_demand=retrain_on_demand,
    )


@pipeline(name=SPARK_MONITORING_PIPELINE, enable_cache=False)
def spark_monitoring_pipeline(
    model_name: str,
    batch_path: str,
    policy: MonitoringPolicy,
    master_url: str,
    spark: dict[str, Any],
    retrain_on_demand: bool = False,
) -> None:
    """A batch too large for one process: checks and drift over the whole batch on Spark; the Evidently report and
    the performance figures on a seeded sample of it."""
    production = production_artifacts(model_name)
    schema, reference = production["feature_schema"], production["train_set"]
    check, sample, counts = batch_statistics_on_spark(
        reference, schema, batch_path=batch_path, master_url=master_url, spark=spark
    )
    checked_sample, _ = check_batch_step(sample, schema, reference)
    predictions = predict_batch(production["model"], checked_sample, schema)
    _, sample_drift = drift_report(reference, checked_sample, schema, policy=policy)
    drift = whole_batch_drift(reference, schema, counts, sample_drift, policy=policy)
    summarize_monitoring(
        predictions,
        check,
        drift,
        schema,
        production["evaluation_report"],
        policy=policy,
        batch_source=batch_path,
        retrain_on_demand=retrain_on_demand,
    )

"""Monitoring pipeline: a new batch against the production model — checks, predictions, drift, performance."""

from zenml import pipeline
from zenml.client import Client

from lifecycle.data import file_fingerprint
from lifecycle.errors import LifecycleError
from lifecycle.monitoring import MonitoringPolicy
from lifecycle.names import EVALUATION, FEATURE_SCHEMA, MODEL, MONITORING_PIPELINE, TEST_SET, TRAIN_SET
from steps.monitoring.batch import check_batch_step, load_batch
from steps.monitoring.drift import drift_report
from steps.monitoring.predict import predict_batch
from steps.monitoring.summarize import summarize_monitoring


class NoProductionModel(LifecycleError):
    """Monitoring needs a production model version, and the named model has none."""


def production_artifacts(model_name: str, stage: str = "production", command: str = "monitor") -> dict:
    """The production version's model, reference (training) and test sets, schema and evaluation, as step inputs."""
    try:
        version = Client().get_model_version(model_name, stage)
    except KeyError as exc:
        raise NoProductionModel(
            f"`python run.py {command}`: model `{model_name}` has no {stage} version. Fix: train it until a version "
            f"is promoted (`python run.py train --model-name {model_name} --data FILE --target COLUMN`, or "
            "`--config` with a file naming it), or pass --model-name of a model that has one "
            "(`zenml model list` lists them)."
        ) from exc
    return {
        "model": version.get_model_artifact(MODEL),
        "train_set": version.get_artifact(TRAIN_SET),
        "feature_schema": version.get_artifact(FEATURE_SCHEMA),
        "evaluation_report": version.get_artifact(EVALUATION),
        "test_set": version.get_artifact(TEST_SET),
    }


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

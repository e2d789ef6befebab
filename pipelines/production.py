"""The artifacts of a model's production (or named) version, as pipeline inputs: what the monitoring, deployment
and batch scoring pipelines start from."""

from zenml.client import Client

from lifecycle.errors import LifecycleError
from lifecycle.hints import run_hint, tool_hint
from lifecycle.names import EVALUATION, FEATURE_SCHEMA, MODEL, TEST_SET, TRAIN_SET


class NoProductionModel(LifecycleError):
    """Monitoring needs a production model version, and the named model has none."""


def production_artifacts(model_name: str, stage: str = "production", command: str = "monitor") -> dict:
    """The production version's model, reference (training) and test sets, schema and evaluation, as step inputs."""
    try:
        version = Client().get_model_version(model_name, stage)
    except KeyError as exc:
        raise NoProductionModel(
            f"`{run_hint()} {command}`: model `{model_name}` has no {stage} version. Fix: train it until a version "
            f"is promoted (`{run_hint()} train --model-name {model_name} --data FILE --target COLUMN`, or "
            "`--config` with a file naming it), or pass --model-name of a model that has one "
            f"(`{tool_hint('zenml')} model list` lists them)."
        ) from exc
    return {
        "model": version.get_model_artifact(MODEL),
        "train_set": version.get_artifact(TRAIN_SET),
        "feature_schema": version.get_artifact(FEATURE_SCHEMA),
        "evaluation_report": version.get_artifact(EVALUATION),
        "test_set": version.get_artifact(TEST_SET),
    }

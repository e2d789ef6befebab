"""Batch scoring pipeline: a file of rows scored by one model version, without a server."""

from typing import Any

from zenml import pipeline

from lifecycle.data import file_fingerprint
from lifecycle.names import BATCH_SCORING_PIPELINE
from pipelines.production import production_artifacts
from steps.inference.score import score_batch
from steps.monitoring.batch import load_batch


@pipeline(name=BATCH_SCORING_PIPELINE, enable_cache=False)
def batch_scoring_pipeline(model_name: str, version: str, input_path: str, log: dict[str, Any] | None = None) -> None:
    artifacts = production_artifacts(model_name, stage=version, command="score")
    batch = load_batch(
        path=input_path, fingerprint=file_fingerprint(input_path), feature_schema=artifacts["feature_schema"]
    )
    score_batch(artifacts["model"], batch, artifacts["feature_schema"], log=log)

"""Batch scoring on a Spark cluster: the same model version and row checks as the batch scoring pipeline, the work
done by the cluster's workers; the run records the job's summary and where its output is."""

from typing import Any

from zenml import pipeline

from lifecycle.names import SPARK_SCORING_PIPELINE
from pipelines.production import production_artifacts
from steps.inference.spark_score import score_on_spark_step


@pipeline(name=SPARK_SCORING_PIPELINE, enable_cache=False)
def spark_scoring_pipeline(
    model_name: str,
    version: str,
    input_path: str,
    output_path: str,
    master_url: str,
    spark: dict[str, Any],
    log: dict[str, Any] | None = None,
) -> None:
    artifacts = production_artifacts(model_name, stage=version, command="score")
    score_on_spark_step(
        artifacts["model"],
        artifacts["feature_schema"],
        input_path=input_path,
        output_path=output_path,
        master_url=master_url,
        spark=spark,
        log=log,
    )

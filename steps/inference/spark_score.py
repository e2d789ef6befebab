import functools
from typing import Annotated, Any

from sklearn.pipeline import Pipeline
from zenml import get_step_context, log_metadata, step

from lifecycle.config import SparkConfig
from lifecycle.names import SPARK_SCORING
from lifecycle.spark_engine import score_on_spark, spark_session, stop_session
from lifecycle.validation import FeatureSchema
from serving.prediction_log import record_slice


@step(enable_cache=False)
def score_on_spark_step(
    model: Pipeline,
    feature_schema: FeatureSchema,
    input_path: str,
    output_path: str,
    master_url: str,
    spark: dict[str, Any],
    log: dict[str, Any] | None = None,
) -> Annotated[dict[str, Any], SPARK_SCORING]:
    """Drive a Spark job that scores the batch on the cluster (the pandas path's row checks and predictions, per
    partition): predictions to a Parquet folder, skipped rows apart with the reason, answered rows to the
    prediction log (backend `batch`). Returns counts and where the files are, never the rows themselves."""
    context = get_step_context()
    version, run = context.model, context.pipeline_run
    session = spark_session(master_url, SparkConfig(**spark), app_name=f"score-{run.name}")
    try:
        result = score_on_spark(
            session,
            model,
            feature_schema,
            input_path,
            output_path,
            run_key=str(run.id)[:8],
            log=functools.partial(record_slice, log, version.name, str(version.number), run.name) if log else None,
        )
    finally:
        stop_session(session)
    summary = {**result.as_dict(), "master_url": master_url}
    log_metadata(metadata=summary, infer_artifact=True, artifact_name=SPARK_SCORING)
    return summary

import time
from typing import Annotated, Any

import pandas as pd
from zenml import get_step_context, log_metadata, step

from lifecycle.mojo_model import TrainedModel
from lifecycle.names import SCORED, SKIPPED
from lifecycle.scoring import score_rows
from lifecycle.validation import FeatureSchema
from serving.prediction_log import process_log


@step(enable_cache=False)
def score_batch(
    model: TrainedModel, batch: pd.DataFrame, feature_schema: FeatureSchema, log: dict[str, Any] | None = None
) -> tuple[Annotated[pd.DataFrame, SCORED], Annotated[pd.DataFrame, SKIPPED]]:
    """Predict every row that can be predicted, each with a request id, into the prediction log (backend `batch`);
    the rows that cannot be predicted are returned with the reason, never dropped silently."""
    started = time.perf_counter()
    scored, skipped = score_rows(model, batch, feature_schema)
    context = get_step_context()
    version, run = context.model, context.pipeline_run
    scored.insert(1, "request_id", [f"batch-{str(run.id)[:8]}-{row}" for row in scored["row"]])
    writer = process_log(log, version.name, str(version.number), "batch", server=run.name)
    if writer is not None and len(scored):
        writer.record_table(
            scored["request_id"].tolist(),
            batch.iloc[scored["row"].to_numpy()],
            feature_schema.model_inputs,
            scored["prediction"].tolist(),
            scored["probability"].tolist() if "probability" in scored else None,
            (time.perf_counter() - started) * 1000,
        )
    log_metadata(
        metadata={"rows": len(batch), "scored_rows": len(scored), "skipped_rows": len(skipped)},
        infer_artifact=True,
        artifact_name=SCORED,
    )
    return scored, skipped

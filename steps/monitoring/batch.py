from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from lifecycle.data import read_table
from lifecycle.monitoring import BatchCheck, check_batch
from lifecycle.names import BATCH, BATCH_CHECK
from lifecycle.validation import FeatureSchema


@step
def load_batch(
    path: str, fingerprint: str, feature_schema: FeatureSchema | None = None
) -> Annotated[pd.DataFrame, BATCH]:
    """Read a batch file (as the model's training file was read: `FeatureSchema.csv_format`); a file with a header
    but no rows is an empty batch, reported downstream."""
    batch = read_table(path, allow_empty=True, csv_format=feature_schema.csv_format if feature_schema else None)
    log_metadata(metadata={"batch_path": path, "batch_fingerprint_sha256": fingerprint, "rows": len(batch)})
    return batch


@step
def check_batch_step(
    batch: pd.DataFrame, feature_schema: FeatureSchema, train_set: pd.DataFrame
) -> tuple[Annotated[pd.DataFrame, "checked_batch"], Annotated[BatchCheck, BATCH_CHECK]]:
    """Missing or all-null columns, text in numeric columns, unseen categories, values outside training range."""
    prepared, check = check_batch(batch, feature_schema, train_set)
    log_metadata(metadata={"batch_problems": check.problems or ["none"], "predictable_rows": check.predictable_rows})
    return prepared, check

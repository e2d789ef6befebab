from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from lifecycle.data import read_table
from lifecycle.monitoring import BatchCheck, check_batch
from lifecycle.names import BATCH, BATCH_CHECK
from lifecycle.validation import FeatureSchema


@step
def load_batch(path: str, fingerprint: str) -> Annotated[pd.DataFrame, BATCH]:
    """Read a batch file; a file with a header but no rows is an empty batch, reported downstream."""
    batch = read_table(path, allow_empty=True)
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

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step
from zenml.metadata.metadata_types import MetadataType

from lifecycle.config import SplitConfig
from lifecycle.names import TEST_SET, TRAIN_SET
from lifecycle.splitting import split_table
from lifecycle.validation import FeatureSchema


@step
def split_data(
    clean_data: pd.DataFrame, feature_schema: FeatureSchema, split: SplitConfig, seed: int
) -> tuple[Annotated[pd.DataFrame, TRAIN_SET], Annotated[pd.DataFrame, TEST_SET]]:
    """Past vs most recent rows when time columns are known, else a seeded (stratified) random split.

    The training slice doubles as the reference set that drift monitoring compares new batches against.
    """
    train, test = split_table(clean_data, feature_schema, split, seed)
    method = "time" if feature_schema.time_columns else "random"
    metadata: dict[str, MetadataType] = {
        "split_method": method,
        "train_rows": len(train),
        "test_rows": len(test),
        "seed": seed,
    }
    if feature_schema.time_columns:
        first = feature_schema.time_columns[0]
        metadata["test_starts_at"] = str(test[first].iloc[0])
    log_metadata(metadata=metadata)
    return train, test

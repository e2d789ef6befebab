from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from lifecycle.config import DatasetConfig
from lifecycle.names import CLEAN_DATA, DATA_QUALITY, FEATURE_SCHEMA
from lifecycle.validation import DataQualityReport, FeatureSchema, validate_table


@step
def validate_data(
    raw_data: pd.DataFrame, dataset: DatasetConfig
) -> tuple[
    Annotated[pd.DataFrame, CLEAN_DATA],
    Annotated[FeatureSchema, FEATURE_SCHEMA],
    Annotated[DataQualityReport, DATA_QUALITY],
]:
    """Fail fast on schema breaks; type the columns; report missing values and what was dropped."""
    clean, schema, report = validate_table(raw_data, dataset)
    log_metadata(
        metadata={
            "task": schema.task,
            "rows_in": report.rows_in,
            "rows_out": report.rows_out,
            "rows_without_target": report.rows_without_target,
            "numeric_features": schema.numeric_features,
            "categorical_features": schema.categorical_features,
            "missing_values": report.missing_values,
            "dropped_columns": report.dropped_columns,
            "warnings": report.warnings,
        }
    )
    return clean, schema, report

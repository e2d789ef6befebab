from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from lifecycle.data import file_fingerprint, read_table, table_schema
from lifecycle.errors import DataError
from lifecycle.names import RAW_DATA


@step
def ingest_data(
    path: str, fingerprint: str, csv_format: dict[str, str] | None = None
) -> Annotated[pd.DataFrame, RAW_DATA]:
    """Load a CSV or Parquet file and record what was loaded.

    `fingerprint` is the file's sha256 taken when the pipeline was composed; passing it as a parameter makes
    the step's cache key change whenever the file's content does. `csv_format`: the config's `dataset.csv`.
    """
    if file_fingerprint(path) != fingerprint:
        raise DataError(f"data file {path} changed while the pipeline was starting. Fix: run again.")
    table = read_table(path, csv_format=csv_format)
    log_metadata(
        metadata={
            "data_path": path,
            "data_fingerprint_sha256": fingerprint,
            "rows": len(table),
            "columns": len(table.columns),
            "schema": table_schema(table),
        }
    )
    return table

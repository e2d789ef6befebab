"""Time windows over a raw table: the batches and retraining windows of monitoring and the replay."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lifecycle.config import DatasetConfig, TimeColumn
from lifecycle.errors import ConfigError
from lifecycle.validation import by_unique


def time_index(table: pd.DataFrame, dataset: DatasetConfig) -> pd.Series:
    """One timestamp per row from the time columns: the first gives the date, later ones add their time of day
    (e.g. `dteday` + `hr`). Unparseable cells give NaT."""
    if not dataset.time_columns:
        raise ConfigError(
            f"{dataset.path}: time windows need dataset.time_columns (or --time-column). "
            "Fix: name the column that orders rows in time."
        )

    def parse(column: TimeColumn) -> pd.Series:
        convert = lambda values: pd.to_datetime(values, format=column.format, errors="coerce")  # noqa: E731
        return pd.to_datetime(by_unique(table[column.column], convert))

    first, *rest = dataset.time_columns
    stamps = parse(first)
    for column in rest:
        parsed = parse(column)
        stamps = stamps + (parsed - parsed.dt.normalize()).fillna(pd.Timedelta(0))
    return stamps


def rows_between(table: pd.DataFrame, times: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Rows with start <= time < end, in time order."""
    mask = (times >= start) & (times < end)
    return table.loc[times[mask].sort_values(kind="stable").index]


def newest_window(table: pd.DataFrame, times: pd.Series, end: pd.Timestamp, days: int) -> pd.DataFrame:
    """The `days` of rows before `end`."""
    return rows_between(table, times, end - pd.Timedelta(days=days), end)


@dataclass
class RetrainingSet:
    """What a retraining set is made of (after exact duplicates are dropped and the window is cut)."""

    rows_from_dataset: int
    rows_from_batch: int
    duplicates_dropped: int
    window_days: int | None
    # A batch too large for one process is sampled: (rows in the sample, rows in the batch).
    batch_sample: tuple[int, int] | None = None

    def describe(self) -> str:
        window = f"newest {self.window_days} days; " if self.window_days else ""
        sampled = (
            f" (of a seeded sample of {self.batch_sample[0]} of its {self.batch_sample[1]} rows)"
            if self.batch_sample
            else ""
        )
        return (
            f"{window}{self.rows_from_dataset} rows from the dataset, {self.rows_from_batch} labelled rows from the "
            f"batch{sampled}, {self.duplicates_dropped} exact duplicate rows dropped"
        )


def retraining_set(
    base: pd.DataFrame, batch: pd.DataFrame, dataset: DatasetConfig, window_days: int, end: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, RetrainingSet]:
    """The dataset plus the batch's labelled rows, without exact duplicates (a batch row already in the dataset
    would otherwise land in both the training and the test split of the new version), cut to the newest
    `window_days` when the data has time columns."""
    batch = batch[batch[dataset.target].notna()] if dataset.target in batch.columns else batch.iloc[0:0]
    batch = batch[[c for c in batch.columns if c in base.columns]]
    source = np.array(["dataset"] * len(base) + ["batch"] * len(batch))
    combined = pd.concat([base, batch], ignore_index=True)
    duplicated = combined.astype(str).duplicated(keep="first").to_numpy()  # the dataset's copy is kept
    combined, source = combined[~duplicated].reset_index(drop=True), source[~duplicated]
    window = None
    if dataset.time_columns:
        times = time_index(combined, dataset)
        inside = newest_window(combined, times, end or (times.max() + pd.Timedelta(seconds=1)), window_days)
        source = source[inside.index.to_numpy()]  # `combined` has a 0..n-1 index: labels are positions
        combined, window = inside.reset_index(drop=True), window_days
    made_of = RetrainingSet(
        rows_from_dataset=int((source == "dataset").sum()),
        rows_from_batch=int((source == "batch").sum()),
        duplicates_dropped=int(duplicated.sum()),
        window_days=window,
    )
    return combined, made_of

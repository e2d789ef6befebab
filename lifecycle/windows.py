"""Time windows over a raw table: the batches and retraining windows of monitoring and the replay."""

from __future__ import annotations

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

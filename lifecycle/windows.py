"""Time windows over a raw table: the batches and retraining windows of monitoring and the replay."""

from __future__ import annotations

import pandas as pd

from lifecycle.config import DatasetConfig
from lifecycle.errors import ConfigError


def time_index(table: pd.DataFrame, dataset: DatasetConfig) -> pd.Series:
    """One timestamp per row from the time columns: the first gives the date, later ones add their time of day
    (e.g. `dteday` + `hr`). Unparseable cells give NaT."""
    if not dataset.time_columns:
        raise ConfigError(
            f"{dataset.path}: time windows need dataset.time_columns (or --time-column). "
            "Fix: name the column that orders rows in time."
        )
    first, *rest = dataset.time_columns
    stamps = pd.to_datetime(table[first.column], format=first.format, errors="coerce")
    for column in rest:
        parsed = pd.to_datetime(table[column.column], format=column.format, errors="coerce")
        stamps = stamps + (parsed - parsed.dt.normalize()).fillna(pd.Timedelta(0))
    return stamps


def rows_between(table: pd.DataFrame, times: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Rows with start <= time < end, in time order."""
    mask = (times >= start) & (times < end)
    return table.loc[times[mask].sort_values(kind="stable").index]


def newest_window(table: pd.DataFrame, times: pd.Series, end: pd.Timestamp, days: int) -> pd.DataFrame:
    """The `days` of rows before `end`."""
    return rows_between(table, times, end - pd.Timedelta(days=days), end)

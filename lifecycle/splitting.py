"""Train/test split: by time when the data has a clock, otherwise seeded random (stratified for labels)."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from lifecycle.config import SplitConfig
from lifecycle.errors import DataError
from lifecycle.validation import FeatureSchema, parse_time_column


def time_order(table: pd.DataFrame, schema: FeatureSchema) -> pd.Index:
    """Row labels sorted by the time columns (e.g. date, then hour), ties kept in file order."""
    keys = pd.DataFrame(
        {
            column: parse_time_column(table[column], schema.time_formats.get(column), "the table")
            for column in schema.time_columns
        },
        index=table.index,
    )
    return keys.sort_values(list(keys.columns), kind="stable").index


def split_table(
    table: pd.DataFrame, schema: FeatureSchema, split: SplitConfig, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test). With time columns the test set is the most recent `test_fraction` of rows."""
    test_rows = max(int(round(len(table) * split.test_fraction)), split.min_test_rows)
    train_rows = len(table) - test_rows
    if train_rows < split.min_train_rows:
        raise DataError(
            f"only {len(table)} usable rows: too few to train on {split.min_train_rows} and test on "
            f"{split.min_test_rows}. Fix: provide more rows, or lower split.min_train_rows / min_test_rows."
        )
    if schema.time_columns:
        ordered = table.loc[time_order(table, schema)]
        train, test = ordered.iloc[:train_rows], ordered.iloc[train_rows:]
    else:
        stratify = None
        if schema.task == "classification":
            counts = table[schema.target].value_counts()
            # Stratification needs two rows of every class and room for each class in the test set.
            if counts.min() >= 2 and test_rows >= len(counts):
                stratify = table[schema.target]
        train, test = train_test_split(table, test_size=test_rows, random_state=seed, stratify=stratify)
    if schema.task == "classification" and train[schema.target].nunique() < 2:
        raise DataError(
            f"the training slice holds a single class of `{schema.target}`. "
            "Fix: provide more varied data, or split at random (no time columns)."
        )
    return train.reset_index(drop=True), test.reset_index(drop=True)

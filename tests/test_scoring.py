"""Batch scoring's plain functions: which rows can be scored, and why the others cannot."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.dummy import DummyRegressor

from lifecycle.scoring import row_problems, score_rows
from lifecycle.validation import FeatureSchema

SCHEMA = FeatureSchema(
    target="y",
    task="regression",
    numeric_features=["a", "b", "c"],
    categorical_features=[],
    time_columns=["day"],
    time_formats={"day": "%Y-%m-%d"},
)


def batch() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "day": ["2024-01-01", "2024-01-02", "yesterday", "2024-01-04", "2024-01-05"],
            "a": [1.0, 2.0, 3.0, None, 5.0],
            "b": ["1", "x", "3", None, "5"],
            "c": [1.0, 2.0, 3.0, None, 5.0],
            "order": [10, 11, 12, 13, 14],
        }
    )


def test_each_unscorable_row_is_named_with_its_reason():
    reasons = row_problems(batch(), SCHEMA)
    assert reasons.tolist() == [
        "",
        "`b` is not a number",
        "`day` is not a time in the format '%Y-%m-%d'",
        "more than 50% of the inputs are missing",
        "",
    ]
    absent = row_problems(batch().drop(columns=["c"]), SCHEMA)
    assert set(absent) == {"the input column(s) c are absent"}


def test_score_rows_predicts_the_good_rows_and_returns_the_others_with_the_reason():
    model = DummyRegressor(constant=7.0, strategy="constant").fit(np.zeros((2, 1)), [0, 0])

    class Inputs:  # the model sees only the model inputs, numeric text converted
        def predict(self, table):
            assert list(table.columns) == SCHEMA.model_inputs and pd.api.types.is_numeric_dtype(table["b"])
            return model.predict(table[["a"]])

    scored, skipped = score_rows(Inputs(), batch(), SCHEMA)
    assert scored["row"].tolist() == [0, 4] and scored["prediction"].tolist() == [7.0, 7.0]
    assert skipped["row"].tolist() == [1, 2, 3] and skipped["reason"].str.len().min() > 10

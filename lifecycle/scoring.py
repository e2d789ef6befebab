"""Batch scoring as plain functions: which rows can be scored (and why not), and their predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lifecycle.modeling import predict_scores
from lifecycle.monitoring import MAX_MISSING_INPUT_SHARE
from lifecycle.validation import FeatureSchema, is_boolean_value, non_numeric_cells


def row_problems(batch: pd.DataFrame, schema: FeatureSchema) -> pd.Series:
    """Per row, why it cannot be scored ("" when it can): a missing input column, text in a numeric input, a time
    that does not parse, or more than half of the inputs missing."""
    reasons = pd.Series("", index=batch.index, dtype=object)
    missing_columns = [c for c in schema.model_inputs if c not in batch.columns]
    if missing_columns:
        return reasons.mask(reasons == "", f"the input column(s) {', '.join(missing_columns)} are absent")

    def add(mask: pd.Series, reason: str) -> None:
        mask = mask & (reasons == "")
        reasons[mask] = reason

    for column in schema.numeric_features:
        _, bad = non_numeric_cells(batch[column])
        if len(bad):
            add(batch.index.isin(bad.index), f"`{column}` is not a number")
    for column in schema.boolean_features:
        cells = batch[column]
        add(cells.notna() & ~cells.map(is_boolean_value).astype(bool), f"`{column}` is not true or false")
    for column in schema.time_columns:
        fmt = schema.time_formats.get(column)
        cells = batch[column]
        parsed = pd.to_datetime(cells.astype(str), format=fmt, errors="coerce")
        add(cells.notna() & parsed.isna(), f"`{column}` is not a time" + (f" in the format {fmt!r}" if fmt else ""))
    missing_share = batch[schema.model_inputs].isna().mean(axis=1)
    add(missing_share > MAX_MISSING_INPUT_SHARE, f"more than {MAX_MISSING_INPUT_SHARE:.0%} of the inputs are missing")
    return reasons


def score_rows(model: Any, batch: pd.DataFrame, schema: FeatureSchema) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scored, skipped): the scorable rows' predictions (`row` is the row's position in the input, from 0, and
    `probability` is the positive class's for a binary classifier), and the other rows with the reason."""
    reasons = row_problems(batch, schema)
    ok = (reasons == "").to_numpy()
    positions = np.arange(len(batch))
    good = batch.loc[ok, schema.model_inputs]
    for column in schema.numeric_features:
        if not pd.api.types.is_numeric_dtype(good[column]):
            good = good.assign(**{column: non_numeric_cells(good[column])[0]})
    scored = pd.DataFrame({"row": positions[ok]})
    if len(good):
        predictions, probabilities = predict_scores(model, good)
        scored["prediction"] = predictions
        if probabilities is not None:
            scored["probability"] = probabilities
    else:
        scored["prediction"] = pd.Series(dtype=float)
    skipped = pd.DataFrame({"row": positions[~ok], "reason": reasons[~ok].to_numpy()})
    return scored, skipped

"""Batch statistics added up from slices (what each Spark task computes, here on pandas slices): the same batch
check as the whole batch's, and the drift verdicts Evidently gives on the whole batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import BIKE_DATA, DEMO_CONFIG

from lifecycle.batch_statistics import (
    JENSEN_SHANNON,
    WASSERSTEIN,
    drift_from_counts,
    histogram_edges,
    merge_checks,
    merge_counts,
    slice_counts,
)
from lifecycle.config import load_config
from lifecycle.monitoring import DriftSummary, check_batch, run_drift_report
from lifecycle.validation import validate_table


@pytest.fixture(scope="module")
def bike():
    config = load_config(DEMO_CONFIG)
    table = pd.read_csv(BIKE_DATA)
    dates = pd.to_datetime(table["dteday"])
    reference, schema, _ = validate_table(
        table[(dates >= "2011-03-01") & (dates < "2011-05-01")].reset_index(drop=True), config.dataset, "reference"
    )
    batch = table[(dates >= "2012-06-01") & (dates < "2012-07-01")].drop(columns=[schema.target])
    batch = batch.reset_index(drop=True).astype({"temp": object})
    batch.loc[3, "temp"] = "warm"
    batch.loc[5:9, ["hum", "windspeed", "atemp", "temp", "weathersit", "season"]] = None
    return reference, schema, batch


def _slices(batch: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [batch.iloc[start : start + size].reset_index(drop=True) for start in range(0, len(batch), size)]


def test_checks_of_slices_add_up_to_the_whole_batchs_check(bike):
    reference, schema, batch = bike
    _, whole = check_batch(batch, schema, reference)
    parts = [slice_counts(part, schema, reference, None) for part in _slices(batch, 97)]
    merged = merge_checks([part["check"] for part in parts])
    assert merged == whole
    assert merged.non_numeric_values == {"temp": 1} and merged.predictable_rows < merged.rows
    empty = merge_checks([*(p["check"] for p in parts), check_batch(batch.head(0), schema, reference)[1].model_dump()])
    assert empty == whole  # an empty slice changes nothing


def test_drift_from_slice_counts_gives_evidentlys_verdicts_on_the_whole_batch(bike):
    reference, schema, batch = bike
    prepared, _ = check_batch(batch, schema, reference)
    _, expected = run_drift_report(reference, prepared, schema, 50)
    slices = _slices(batch, 130)
    columns = merge_counts([slice_counts(part, schema, reference, None) for part in slices], schema)
    edges = histogram_edges(columns, schema, reference, 1000)
    histograms: dict[str, list[int]] = {}
    for part in slices:
        for column, counts in slice_counts(part, schema, reference, edges).items():
            histograms[column] = list(np.add(histograms.get(column, [0] * len(counts)), counts))
    drift = drift_from_counts(
        reference, schema, columns, histograms, edges, len(batch), 50, DriftSummary(judged=False), 0
    )
    assert drift.drifted_columns == expected.drifted_columns and drift.share == expected.share
    assert {d.method for d in drift.columns.values()} == {WASSERSTEIN, JENSEN_SHANNON}
    for column, judged in drift.columns.items():
        assert judged.method == expected.columns[column].method
        tolerance = 1e-9 if judged.method == JENSEN_SHANNON else 0.005
        assert judged.score == pytest.approx(expected.columns[column].score, abs=tolerance), column

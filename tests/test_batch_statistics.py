"""Batch statistics added up from slices (what each Spark task computes, here on pandas slices): the same batch
check as the whole batch's, and the drift verdicts Evidently gives on the whole batch."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import BIKE_DATA, DEMO_CONFIG

from lifecycle.batch_statistics import (
    CHI_SQUARE,
    JENSEN_SHANNON,
    KOLMOGOROV_SMIRNOV,
    LARGE_REFERENCE,
    SCIPY_EXACT_KS,
    WASSERSTEIN,
    Z_TEST,
    drift_from_counts,
    merge_checks,
    merge_counts,
    second_pass,
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


def _drift_from_slices(reference, schema, batch, size):
    """What the Spark path computes, on pandas slices of `size` rows: both passes, added up, then the drift."""
    slices = _slices(batch, size)
    columns = merge_counts([slice_counts(part, schema, reference, None) for part in slices], schema)
    second = second_pass(columns, schema, reference, 1000)
    for part in slices:
        second.add(slice_counts(part, schema, reference, second))
    return drift_from_counts(reference, schema, columns, second, len(batch), 50, DriftSummary(judged=False), 0)


def test_drift_from_slice_counts_gives_evidentlys_verdicts_on_the_whole_batch(bike):
    reference, schema, batch = bike
    prepared, _ = check_batch(batch, schema, reference)
    _, expected = run_drift_report(reference, prepared, schema, 50)
    drift = _drift_from_slices(reference, schema, batch, 130)
    assert drift.drifted_columns == expected.drifted_columns and drift.share == expected.share
    assert {d.method for d in drift.columns.values()} == {WASSERSTEIN, JENSEN_SHANNON}
    for column, judged in drift.columns.items():
        assert judged.method == expected.columns[column].method
        tolerance = 1e-9 if judged.method == JENSEN_SHANNON else 0.005
        assert judged.score == pytest.approx(expected.columns[column].score, abs=tolerance), column


def test_small_reference_tests_from_slice_counts_give_evidentlys_p_values(bike):
    """A reference of at most 1,000 rows: Evidently picks Kolmogorov-Smirnov, chi-square and the z-test, whose
    p-values the counts give exactly: on a batch of 720 rows (scipy's exact KS) and one of more than 10,000
    (its asymptotic one), with drifted and calm columns."""
    full_reference, schema, batch = bike
    reference = full_reference.sample(LARGE_REFERENCE - 100, random_state=3).reset_index(drop=True)
    table = pd.read_csv(BIKE_DATA).drop(columns=[schema.target])
    dates = pd.to_datetime(table["dteday"])
    large = table[dates >= "2011-06-15"].reset_index(drop=True)
    assert len(batch) < SCIPY_EXACT_KS < len(large)
    for current, size in ((batch, 97), (large, 2500)):
        prepared, _ = check_batch(current, schema, reference)
        _, expected = run_drift_report(reference, prepared, schema, 50)
        drift = _drift_from_slices(reference, schema, current, size)
        assert {d.method for d in drift.columns.values()} == {KOLMOGOROV_SMIRNOV, CHI_SQUARE, Z_TEST}
        assert drift.drifted_columns == expected.drifted_columns and drift.share == expected.share
        assert 0 < len(drift.drifted_columns) < len(drift.columns)
        for column, judged in drift.columns.items():
            assert judged.method == expected.columns[column].method, column
            assert judged.score == pytest.approx(expected.columns[column].score, rel=1e-9, abs=1e-300), column

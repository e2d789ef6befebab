"""Malformed tables thrown at validation (`validate_table`, and `validate_file` for a few of them written out) and
at monitoring's batch check (`check_batch`): missing, renamed and duplicated columns, text in numeric columns, the
target as text, NaN and infinities, huge cells, unseen categories, broken times and times with several UTC offsets.

Every generated case must end in a `LifecycleError` whose message names the problem (the file, the column, the
rows) and a fix, or on a documented tolerant path (rows without a target dropped and counted, infinities treated
as missing, empty and identifier-like columns dropped, unseen categories listed): never in a raw pandas, numpy,
pyarrow or decoding error. Examples are derandomized, so CI sees the same cases every run; the number of cases
tried per property is printed at the end of the module. Broken files are in tests/test_bad_data_files.py, the
training pipeline on broken files in tests/test_bad_data_training.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bad_data_cases import (
    BIKE,
    BIKE_BATCH,
    BIKE_DATASET,
    BIKE_REQUIRED,
    BIKE_TIME_COLUMNS,
    CHURN,
    CHURN_DATASET,
    CHURN_INFERRED_NUMERIC,
    NAMES,
    TRAIN_ROWS,
    WORDS,
    attempt,
    bike_file,
    cases_tried,
    clear,
    examples,
    is_text,
    new_path,
    rows_of,
    tried,
    with_cells,
    workdir,
)
from hypothesis import assume, given
from hypothesis import strategies as st

from lifecycle.monitoring import check_batch
from lifecycle.validation import NUMERIC_LOOKING_SHARE, validate_file, validate_table

__all__ = ["cases_tried", "workdir"]  # the shared fixtures, used by name


# --- columns: missing, renamed, duplicated -----------------------------------------------------------------


@examples(40)
@given(column=st.sampled_from(list(BIKE.columns)), new_name=st.none() | NAMES)
def test_missing_or_renamed_column_is_named_with_a_fix(column, new_name):
    assume(new_name not in BIKE.columns)
    table = BIKE.drop(columns=column) if new_name is None else BIKE.rename(columns={column: new_name})
    tried("missing_or_renamed_column")
    result, error = attempt(lambda: validate_table(table, BIKE_DATASET))
    if column in BIKE_REQUIRED:
        message = clear(error, f"`{column}`", BIKE_DATASET.path)
        assert "missing from" in message and "columns present" in message
    else:  # an optional column: the model simply does without it
        assert error is None, str(error)
        assert column not in result[1].model_inputs


@examples(25)
@given(column=st.sampled_from(list(BIKE.columns)), spaces=st.sampled_from(["", " ", "  ", "\t"]), in_file=st.booleans())
def test_duplicated_columns_are_refused(workdir, column, spaces, in_file):
    assume(in_file or spaces == "")  # in memory, names are taken as they are
    copy = BIKE[[column]].rename(columns={column: spaces + column})
    table = pd.concat([BIKE, copy], axis=1)
    tried("duplicated_columns")
    if in_file:  # pandas renames a repeated CSV header to `x.1`: the duplicate must still be caught
        path = new_path(workdir, ".csv")
        table.to_csv(path, index=False)
        _, error = attempt(lambda: validate_file(bike_file(path)))
        message = clear(error, column, str(path))
    else:
        _, error = attempt(lambda: validate_table(table, BIKE_DATASET))
        message = clear(error, column, BIKE_DATASET.path)
    assert "duplicated column names" in message


# --- wrong types -------------------------------------------------------------------------------------------


@examples(40)
@given(data=st.data())
def test_text_in_numeric_columns_names_column_and_rows(data):
    declared = data.draw(st.booleans(), label="declared numeric")
    if declared:
        table, dataset = BIKE, BIKE_DATASET
        column = data.draw(st.sampled_from(BIKE_DATASET.numeric_columns), label="column")
    else:
        table, dataset = CHURN, CHURN_DATASET
        column = data.draw(st.sampled_from(CHURN_INFERRED_NUMERIC), label="column")
    rows = data.draw(rows_of(table), label="rows")
    words = data.draw(st.lists(WORDS, min_size=len(rows), max_size=len(rows)), label="words")
    broken = with_cells(table, column, rows, words)
    tried("text_in_numeric_columns")
    result, error = attempt(lambda: validate_table(broken, dataset))
    non_null = int(broken[column].notna().sum())
    if declared or (non_null - len(rows)) / non_null >= NUMERIC_LOOKING_SHARE:
        message = clear(error, f"`{column}`", dataset.path)
        assert f"(row {min(rows) + 2})" in message  # CSV line numbers: the header is line 1
    else:  # mostly text: a categorical column (or an identifier, dropped and reported)
        assert error is None, str(error)
        _, schema, report = result
        assert column in schema.categorical_features or column in report.dropped_columns


@examples(25)
@given(data=st.data())
def test_target_as_text(data):
    target = BIKE_DATASET.target
    mode = data.draw(st.sampled_from(["some text, regression", "labels, task inferred", "numbers as text"]))
    if mode == "some text, regression":
        rows = data.draw(rows_of(BIKE, most=40), label="rows")
        words = data.draw(st.lists(WORDS, min_size=len(rows), max_size=len(rows)), label="words")
        tried("target_as_text")
        _, error = attempt(lambda: validate_table(with_cells(BIKE, target, rows, words), BIKE_DATASET))
        assert "--task classification" in clear(error, f"`{target}`", BIKE_DATASET.path)
    elif mode == "labels, task inferred":
        labels = data.draw(st.lists(WORDS, min_size=1, max_size=4, unique=True), label="labels")
        values = [labels[index % len(labels)] for index in range(len(BIKE))]
        dataset = BIKE_DATASET.model_copy(update={"task": None})
        tried("target_as_text")
        result, error = attempt(lambda: validate_table(BIKE.assign(**{target: values}), dataset))
        if len(labels) == 1:
            assert "single class" in clear(error, f"`{target}`")
        else:
            assert error is None, str(error)
            assert result[1].task == "classification" and result[1].classes == sorted(labels, key=str)
    else:
        spaces = data.draw(st.sampled_from(["", " ", "  "]), label="padding")
        text = BIKE[target].map(lambda value: f"{spaces}{value}{spaces}")
        tried("target_as_text")
        result, error = attempt(lambda: validate_table(BIKE.assign(**{target: text}), BIKE_DATASET))
        assert error is None, str(error)
        np.testing.assert_array_equal(result[0][target].to_numpy(), BIKE[target].to_numpy(dtype=float))


# --- NaN and infinities ------------------------------------------------------------------------------------


@examples(50)
@given(data=st.data())
def test_nan_and_infinities_fail_clearly_or_are_counted(data):
    target = BIKE_DATASET.target
    column = data.draw(
        st.sampled_from([target, *BIKE_DATASET.numeric_columns, *BIKE_TIME_COLUMNS, "season", "weathersit"]),
        label="column",
    )
    rows = list(range(len(BIKE))) if data.draw(st.booleans(), label="every row") else data.draw(rows_of(BIKE))
    pool = data.draw(st.sampled_from([[np.nan], [np.inf, -np.inf], [np.nan, np.inf, -np.inf]]), label="values")
    values = data.draw(st.lists(st.sampled_from(pool), min_size=len(rows), max_size=len(rows)), label="cells")
    broken = with_cells(BIKE, column, rows, values)
    if column in BIKE_DATASET.numeric_columns or column == target:
        broken[column] = broken[column].astype(float)
    nans = sum(1 for value in values if np.isnan(value))
    infinities = len(values) - nans
    tried("nan_and_infinities")
    result, error = attempt(lambda: validate_table(broken, BIKE_DATASET))

    if column == target:
        if nans == len(BIKE):
            assert "all 240 values are missing" in clear(error, f"`{target}`")
        elif infinities:
            assert "infinite values" in clear(error, f"`{target}`")
        else:  # documented tolerant path: rows without a target are dropped and counted
            assert error is None, str(error)
            clean, _, report = result
            assert report.rows_without_target == nans and report.rows_out == len(BIKE) - nans == len(clean)
            assert clean[target].notna().all()
    elif column in BIKE_TIME_COLUMNS:
        assert "time column" in clear(error, f"`{column}`", BIKE_DATASET.path)
    elif column in BIKE_DATASET.numeric_columns:
        assert error is None, str(error)
        clean, schema, report = result
        if nans == len(BIKE):
            assert report.dropped_columns[column] == "all values missing"
        else:  # documented tolerant path: infinities become missing values, imputed in the model
            assert not np.isinf(clean[column]).any()
            assert report.infinities_replaced.get(column, 0) == infinities
            assert report.missing_values[column] == int(clean[column].isna().sum())
    elif error is not None:
        clear(error, f"`{column}`")
    else:
        clean, schema, report = result
        assert column in schema.features or column in report.dropped_columns


# --- huge strings and unseen categories --------------------------------------------------------------------


@examples(15)
@given(
    column=st.sampled_from(list(BIKE.columns)),
    row=st.integers(0, TRAIN_ROWS - 1),
    length=st.integers(10_000, 300_000),
    char=st.characters(categories=("L", "N", "P", "S")),
    in_file=st.booleans(),
)
def test_huge_strings(workdir, column, row, length, char, in_file):
    table = with_cells(BIKE, column, [row], [char * length])
    if in_file:
        path = new_path(workdir, ".csv")
        table.to_csv(path, index=False)
        source, call = str(path), lambda: validate_file(bike_file(path))
    else:
        source, call = BIKE_DATASET.path, lambda: validate_table(table, BIKE_DATASET)
    tried("huge_strings")
    result, error = attempt(call)
    if error is not None:
        clear(error, source)  # and no megabyte of the cell in the message
    elif not in_file:
        clean, schema, report = result
        assert (
            column in schema.model_inputs + [BIKE_DATASET.target]
            or column in report.dropped_columns
            or (column in BIKE_DATASET.drop_columns)
        )


@pytest.fixture(scope="module")
def bike_training():
    return validate_table(BIKE, BIKE_DATASET)


@examples(25)
@given(data=st.data())
def test_unseen_categories_are_listed_never_raised(bike_training, data):
    clean, schema, _ = bike_training
    column = data.draw(st.sampled_from(schema.categorical_features), label="column")
    known = set(clean[column].dropna().astype(str))
    new = data.draw(st.lists(WORDS.filter(lambda w: w not in known), min_size=1, max_size=5, unique=True))
    rows = data.draw(rows_of(BIKE_BATCH), label="rows")
    batch = with_cells(BIKE_BATCH, column, rows, [new[i % len(new)] for i in range(len(rows))])
    if data.draw(st.booleans(), label="also break a number column"):
        numeric = data.draw(st.sampled_from(schema.numeric_features))
        cells = data.draw(st.lists(WORDS | st.sampled_from([np.nan, np.inf, -np.inf]), min_size=1, max_size=10))
        batch = with_cells(batch, numeric, list(range(len(cells))), cells)
    tried("unseen_categories")
    # A batch (monitoring): unseen categories are listed as a problem, the batch is still checked.
    _, check = check_batch(batch, schema, clean)
    assert set(check.unseen_categories[column]) == set(new[: len(rows)])
    assert any(f"`{column}`: unseen categories" in line for line in check.problems)
    # A training table made only of categories never seen before is simply another table.
    values = [new[i % len(new)] for i in range(len(BIKE))]
    result, error = attempt(lambda: validate_table(BIKE.assign(**{column: values}), BIKE_DATASET))
    assert error is None, str(error)
    assert column in result[1].categorical_features or column in result[2].dropped_columns


# --- time columns ------------------------------------------------------------------------------------------

TIME_JUNK = (
    WORDS
    | st.sampled_from(
        ["2011-05-01 00:00+05:00", "2011-05-01T00:00:00Z", "31/02/2011", "9999-99-99", "", " ", "13pm", "2011-13-01"]
    )
    | st.floats()
    | st.integers(-(10**20), 10**20)
)


@examples(25)
@given(data=st.data())
def test_broken_time_values_are_named(data):
    column = data.draw(st.sampled_from(BIKE_TIME_COLUMNS), label="column")
    rows = data.draw(rows_of(BIKE, most=30), label="rows")
    values = data.draw(st.lists(TIME_JUNK, min_size=len(rows), max_size=len(rows)), label="values")
    tried("broken_time_values")
    _, error = attempt(lambda: validate_table(with_cells(BIKE, column, rows, values), BIKE_DATASET))
    if error is not None or any(isinstance(v, str) and v.strip() and is_text(v) for v in values):
        assert "time column" in clear(error, f"`{column}`", BIKE_DATASET.path)


@examples(15)
@given(offsets=st.lists(st.sampled_from(["+00:00", "-05:00", "-04:00", "+05:30", "Z"]), min_size=1, max_size=4))
def test_times_with_several_utc_offsets_are_named(offsets):
    """Exports in local time carry the offset of the day (daylight saving time changes it within a column)."""
    stamps = [f"{day} 00:00{offsets[index % len(offsets)]}" for index, day in enumerate(BIKE["dteday"])]
    tried("times_with_utc_offsets")
    _, error = attempt(lambda: validate_table(BIKE.assign(dteday=stamps), BIKE_DATASET))
    if len({"+00:00" if offset == "Z" else offset for offset in offsets}) > 1:
        assert "time column" in clear(error, "`dteday`", BIKE_DATASET.path)
    elif error is not None:
        clear(error, "`dteday`", BIKE_DATASET.path)

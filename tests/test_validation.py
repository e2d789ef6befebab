import numpy as np
import pandas as pd
import pytest

from lifecycle.config import DatasetConfig
from lifecycle.errors import DataError
from lifecycle.validation import infer_task, validate_table


def dataset(**overrides) -> DatasetConfig:
    base = {"path": "/data/t.csv", "target": "y", "task": "regression"}
    return DatasetConfig(**{**base, **overrides})


def table(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "when": pd.date_range("2024-01-01", periods=rows, freq="h").astype(str),
            "x": rng.normal(size=rows),
            "colour": rng.choice(["red", "blue"], size=rows),
            "y": rng.normal(size=rows),
        }
    )


def test_types_columns_and_reports_missing_values():
    raw = table()
    raw.loc[[1, 2], "x"] = np.nan
    raw.loc[3, "colour"] = None
    clean, schema, report = validate_table(raw, dataset(time_columns=["when"]))
    assert schema.numeric_features == ["x"] and schema.categorical_features == ["colour"]
    assert schema.model_inputs == ["when", "x", "colour"]
    assert report.missing_values == {"x": 2, "colour": 1}
    assert report.rows_in == report.rows_out == 60
    assert list(clean.columns) == ["when", "x", "colour", "y"]


def test_missing_target_names_column_file_and_fix():
    with pytest.raises(DataError) as error:
        validate_table(table().drop(columns="y"), dataset())
    message = str(error.value)
    assert "`y` (target)" in message and "/data/t.csv" in message and "columns present: when, x, colour" in message
    assert "--target" in message


def test_missing_configured_column_is_reported():
    with pytest.raises(DataError, match=r"`size` \(numeric column\)"):
        validate_table(table(), dataset(numeric_columns=["size"]))


def test_all_null_target_is_a_schema_break():
    raw = table().assign(y=np.nan)
    with pytest.raises(DataError, match="all 60 values are missing"):
        validate_table(raw, dataset())


def test_rows_without_target_are_dropped_and_counted():
    raw = table()
    raw.loc[[0, 5], "y"] = np.nan
    clean, _, report = validate_table(raw, dataset())
    assert len(clean) == 58 and report.rows_without_target == 2


def test_text_in_a_declared_numeric_column_names_cells_and_fix():
    raw = table().astype({"x": object})
    raw.loc[4, "x"] = "n/a?"
    with pytest.raises(DataError) as error:
        validate_table(raw, dataset(numeric_columns=["x"]))
    assert "`x`" in str(error.value) and "'n/a?' (row 6)" in str(error.value)
    assert "categorical_columns" in str(error.value)


def test_text_in_an_inferred_numeric_looking_column_is_caught():
    raw = table().astype({"x": object})
    raw.loc[7, "x"] = "oops"
    with pytest.raises(DataError, match="looks numeric"):
        validate_table(raw, dataset())


def test_numbers_stored_as_text_are_converted():
    raw = table()
    raw["x"] = raw["x"].map(lambda v: f"{v:.3f}")
    _, schema, _ = validate_table(raw, dataset())
    assert "x" in schema.numeric_features


def test_missing_value_markers_are_missing_not_text():
    raw = table().astype({"x": object})
    raw.loc[[3, 9], "x"] = [" ?", "-"]
    clean, schema, report = validate_table(raw, dataset(numeric_columns=["x"]))
    assert "x" in schema.numeric_features and report.missing_values["x"] == 2


def test_text_target_for_regression_is_refused():
    raw = table().astype({"y": object})
    raw.loc[0, "y"] = "high"
    with pytest.raises(DataError, match="--task classification"):
        validate_table(raw, dataset())


def test_tolerant_paths_are_reported():
    raw = table(80)
    raw["empty"] = np.nan
    raw["row_id"] = [f"id-{i}" for i in range(80)]
    raw.loc[0, "x"] = np.inf
    clean, schema, report = validate_table(raw, dataset())
    assert report.dropped_columns["empty"] == "all values missing"
    assert report.dropped_columns["row_id"] == "identifier-like (a distinct value per row)"
    assert "--time-column" in report.dropped_columns["when"]
    assert report.infinities_replaced == {"x": 1} and np.isnan(clean.loc[0, "x"])
    assert "row_id" not in schema.features


def test_declared_categorical_numbers_stay_categories():
    raw = table().assign(code=lambda t: np.arange(len(t)) % 3)
    _, schema, _ = validate_table(raw, dataset(categorical_columns=["code"]))
    assert "code" in schema.categorical_features


def test_single_class_is_refused():
    raw = table().assign(y="same")
    with pytest.raises(DataError, match="single class"):
        validate_table(raw, dataset(task="classification"))


def test_unparseable_time_column_is_reported():
    raw = table()
    raw.loc[2, "when"] = "yesterday"
    with pytest.raises(DataError, match="'yesterday'"):
        validate_table(raw, dataset(time_columns=["when"]))


def test_duplicated_columns_are_refused():
    raw = pd.concat([table(), table()[["x"]]], axis=1)
    with pytest.raises(DataError, match="duplicated column names: x"):
        validate_table(raw, dataset())


@pytest.mark.parametrize(
    "values, task",
    [
        ([1.5, 2.25, 3.0, 4.75] * 10, "regression"),
        (list(range(40)), "regression"),
        ([0, 1] * 20, "classification"),
        (["yes", "no"] * 20, "classification"),
        ([True, False] * 20, "classification"),
    ],
)
def test_infer_task(values, task):
    assert infer_task(pd.Series(values)) == task


def test_task_is_inferred_when_not_configured():
    raw = table().assign(y=lambda t: np.where(t["x"] > 0, "up", "down"))
    _, schema, _ = validate_table(raw, dataset(task=None))
    assert schema.task == "classification" and schema.classes == ["down", "up"]

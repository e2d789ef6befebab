"""One row, one prediction, through every path: a table read from the CSV its author wrote, the same rows as a
batch file (with or without blanks), and the same rows as JSON requests in any natural spelling (`true`, `"True"`,
`1`, `"1"`, `"001"`, `null`) get identical predictions. Tables are generated (hypothesis): booleans, integer codes
with gaps, string and unicode categories, decimal commas, leading-zero codes, dates and high-cardinality text.
The served variant of this test, on every backend, is tests/test_data_contract_served.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import note
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecycle.config import CsvFormat, DatasetConfig, TrainingConfig
from lifecycle.data import read_table
from lifecycle.modeling import fit_model
from lifecycle.scoring import score_rows
from lifecycle.validation import MISSING_CATEGORY, FeatureSchema, canonical_category, validate_file, validate_table
from serving.contract import RequestError, json_records, records_frame

CITIES = ["Zürich", "São Paulo", "Kraków", "東京", "Αθήνα", "Paris"]


@dataclass
class Generated:
    table: pd.DataFrame  # the values as the author meant them
    european: bool  # written with `;` and decimal commas
    dataset: DatasetConfig


def make_table(seed: int, rows: int, european: bool, gaps: bool, classification: bool) -> Generated:
    rng = np.random.default_rng(seed)
    flag = rng.random(rows) < 0.4
    code = rng.choice([1, 2, 3, 7, 40], size=rows)
    amount = np.round(rng.normal(50, 15, rows), 2)
    zone = np.array([f"{value:05d}" for value in rng.choice([42, 1042, 7, 99001], size=rows)])
    city = rng.choice(CITIES, size=rows)
    signal = amount / 10 + 8 * flag + code + (city == "東京") * 5 + (zone == "01042") * 3
    table = pd.DataFrame(
        {
            "day": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "flag": flag.astype(object),
            "code": code.astype(object),
            "amount": amount,
            "zone": zone,
            "city": city,
            "note": [f"free text {index} ✓" for index in range(rows)],  # a distinct value per row: set aside
            "target": np.where(signal > np.median(signal), "high", "low")
            if classification
            else np.round(signal + rng.normal(0, 1, rows), 3),
        }
    )
    if gaps:
        for column in ("flag", "code", "amount", "city"):
            table.loc[rng.random(rows) < 0.1, column] = None
    dataset = DatasetConfig(
        path="generated.csv",
        target="target",
        task="classification" if classification else "regression",
        time_columns=["day"],
        categorical_columns=["code", "zone"],
    )
    return Generated(table, european, dataset)


def write_csv(generated: Generated, rows: pd.DataFrame, path: Path) -> Path:
    if generated.european:
        rows.to_csv(path, sep=";", decimal=",", index=False)
    else:
        rows.to_csv(path, index=False)
    return path


def natural_spellings(records: list[dict], schema: FeatureSchema, rng: np.random.Generator) -> list[dict]:
    """The same records as a client might write them: booleans as words, codes as text or with leading zeros,
    numbers as numerals, missing values as NaN."""
    respelled = []
    for record in records:
        changed = dict(record)
        for column, value in record.items():
            if value is None:
                if column in schema.categorical_features and rng.random() < 0.5:
                    changed[column] = float("nan")
                continue
            if isinstance(value, bool):
                changed[column] = [value, str(value), str(value).lower(), str(value).upper()][rng.integers(4)]
            elif column in schema.numeric_features:
                changed[column] = [value, repr(float(value))][rng.integers(2)]
            elif isinstance(value, int | float) and float(value).is_integer():
                changed[column] = [int(value), float(value), str(int(value)), f"00{int(value)}"][rng.integers(4)]
        respelled.append(changed)
    return respelled


def check_every_path(generated: Generated, folder: Path) -> FeatureSchema:
    source = write_csv(generated, generated.table, folder / "train.csv")
    read = read_table(source)
    clean, schema, _ = validate_table(read, generated.dataset, str(source))
    assert "amount" in schema.numeric_features, (schema, read.dtypes)  # decimal commas read as numbers
    assert "flag" in schema.boolean_features and "note" not in schema.features
    model, _ = fit_model(clean, schema, TrainingConfig(estimator={"name": "decision_tree"}, seed=3))
    inputs = clean[schema.model_inputs]
    expected = model.predict(inputs)

    # Batch: the same rows in a file of their own; and the rows without any blank, where pandas reads the codes
    # as integers instead of floats.
    batch = read_table(write_csv(generated, generated.table.drop(columns=["target"]), folder / "batch.csv"))
    scored, skipped = score_rows(model, batch, schema)
    assert skipped.empty, skipped
    assert list(scored["prediction"]) == list(expected)
    complete = generated.table.notna().all(axis=1).to_numpy()
    if complete.sum():
        whole = read_table(write_csv(generated, generated.table[complete], folder / "whole.csv"))
        assert list(score_rows(model, whole, schema)[0]["prediction"]) == list(expected[complete])

    # Requests: through JSON, as the rows are, and as a client might spell them; one row at a time too (the
    # model's compact path for a few rows) and all at once (scikit-learn's path).
    records = json.loads(json.dumps(json_records(read, schema)))
    respelled = json.loads(json.dumps(natural_spellings(records, schema, np.random.default_rng(len(records)))))
    for payload in (records, respelled):
        assert list(model.predict(records_frame({"records": payload}, schema))) == list(expected)
    for index in range(0, len(records), 7):
        one = records_frame({"records": [respelled[index]]}, schema)
        assert model.predict(one)[0] == expected[index]
    return schema


@settings(max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(
    seed=st.integers(0, 2**16),
    rows=st.integers(60, 140),
    european=st.booleans(),
    gaps=st.booleans(),
    classification=st.booleans(),
)
def test_every_path_predicts_the_same_for_the_same_rows(tmp_path_factory, seed, rows, european, gaps, classification):
    folder = tmp_path_factory.mktemp("contract")
    schema = check_every_path(make_table(seed, rows, european, gaps, classification), folder)
    TRIED.append((rows, european, gaps, schema.task))


TRIED: list[tuple[int, bool, bool, str]] = []


@pytest.fixture(scope="module", autouse=True)
def report_tables_tried():
    yield
    if TRIED:
        note(
            f"data contract, in-process: {len(TRIED)} generated tables ({sum(t[1] for t in TRIED)} European, "
            f"{sum(t[2] for t in TRIED)} with gaps, {sum(t[3] == 'classification' for t in TRIED)} classification, "
            f"{min(t[0] for t in TRIED)}-{max(t[0] for t in TRIED)} rows): file, batch and JSON predictions identical"
        )


@pytest.mark.parametrize(
    "value, category",
    [
        (1, "1"),
        (1.0, "1"),
        ("1", "1"),
        ("001", "1"),
        ("1.50", "1.5"),
        (np.int64(1042), "1042"),
        ("001042", "1042"),
        (True, "True"),
        (np.bool_(False), "False"),
        ("true", "True"),
        (" FALSE ", "False"),
        (None, MISSING_CATEGORY),
        (float("nan"), MISSING_CATEGORY),
        (pd.NA, MISSING_CATEGORY),
        ("", MISSING_CATEGORY),
        ("Zürich", "Zürich"),
        ("nan", "nan"),  # the word, not a missing value: only a real NaN is missing
        ("1e3", "1e3"),  # not a plain numeral: kept as written
        (1e20, "100000000000000000000"),
        ("-0", "0"),
    ],
)
def test_canonical_category(value, category):
    assert canonical_category(value) == category


def test_decimal_comma_csv_gives_a_numeric_target_and_features(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("temp;label;count\n12,25;a;1.234,5\n-0,5;b;2\n3;a;1.000\n", encoding="utf-8")
    table = read_table(path)
    assert table["temp"].tolist() == [12.25, -0.5, 3.0]
    assert table["count"].tolist() == [1234.5, 2.0, 1000.0]
    assert table["label"].astype(str).tolist() == ["a", "b", "a"]


def test_csv_marks_from_the_config_win_over_detection(tmp_path):
    path = tmp_path / "pipes.txt"
    path.write_text("a|b\n1,5|x\n2,5|y\n", encoding="utf-8")
    assert read_table(path)["a"].tolist() == [1.5, 2.5]  # detected: `|` and a decimal comma
    as_text = read_table(path, csv_format=CsvFormat(separator="|", decimal="."))
    assert as_text["a"].astype(str).tolist() == ["1,5", "2,5"]


def test_bom_and_utf16_files_are_read(tmp_path):
    text = "größe;stadt\n1,5;Zürich\n2,5;Kraków\n"
    (tmp_path / "bom.csv").write_bytes(text.encode("utf-8-sig"))
    (tmp_path / "utf16.csv").write_bytes(text.encode("utf-16"))
    for name in ("bom.csv", "utf16.csv"):
        table = read_table(tmp_path / name)
        assert list(table.columns) == ["größe", "stadt"]
        assert table["größe"].tolist() == [1.5, 2.5]


def test_a_configured_encoding_reads_a_latin1_file(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("name,n\ncafé,1\n".encode("latin-1"))
    assert read_table(path, csv_format={"encoding": "latin-1"})["name"].astype(str).tolist() == ["café"]


@pytest.mark.parametrize(
    "value, accepted",
    [(True, True), ("true", True), ("False", True), (None, True), (float("nan"), True), (1, False), ("yes", False)],
)
def test_boolean_inputs_accept_true_false_and_their_words(value, accepted):
    schema = FeatureSchema(
        target="y", task="regression", numeric_features=[], categorical_features=["flag"], boolean_features=["flag"]
    )
    payload = {"records": [{"flag": value}]}
    if accepted:
        assert len(records_frame(payload, schema)) == 1
    else:
        with pytest.raises(RequestError, match="expected true, false or null"):
            records_frame(payload, schema)


def test_numeric_inputs_accept_numerals_as_text():
    schema = FeatureSchema(target="y", task="regression", numeric_features=["x"], categorical_features=[])
    frame = records_frame({"records": [{"x": "1.5"}, {"x": 2}, {"x": None}]}, schema)
    assert frame["x"].tolist()[:2] == [1.5, 2.0] and np.isnan(frame["x"].iloc[2])
    with pytest.raises(RequestError, match="finite number"):
        records_frame({"records": [{"x": "12,5"}]}, schema)


def test_the_configured_csv_format_is_used_for_training_and_kept_for_batches(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("city;temp;y\nSão Paulo;12,5;1,5\nKöln;3,25;2,5\nSão Paulo;1;3\nKöln;2;4\n".encode("cp1252"))
    dataset = DatasetConfig(path=str(path), target="y", task="regression", csv={"encoding": "cp1252"})
    assert validate_file(dataset).rows_out == 4
    _, schema, _ = validate_table(read_table(path, csv_format=dataset.csv), dataset)
    assert schema.csv_format == {"encoding": "cp1252"} and schema.numeric_features == ["temp"]
    assert read_table(path, csv_format=schema.csv_format)["city"].astype(str).tolist()[0] == "São Paulo"

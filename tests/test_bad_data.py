"""Malformed tables thrown at ingestion (`read_table`, `validate_file`) and validation (`validate_table`).

Every generated case must end in a `LifecycleError` whose message names the problem (the file, the column, the
rows) and a fix, or on a documented tolerant path (rows without a target dropped and counted, infinities treated
as missing, empty and identifier-like columns dropped, unseen categories listed): never in a raw pandas, numpy,
pyarrow or decoding error. Examples are derandomized, so CI sees the same cases every run; the number of cases
tried per property is printed at the end of the module.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import gzip
import io
import itertools
import json
import lzma
import math
import os
import shutil
import signal
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest
from conftest import BIKE_DATA, DEMO_CONFIG, PROJECT_ROOT, make_churn_table, note
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from lifecycle.config import DatasetConfig, EstimatorConfig, apply_overrides, load_config
from lifecycle.data import as_categories, read_table
from lifecycle.errors import LifecycleError
from lifecycle.monitoring import check_batch
from lifecycle.validation import MISSING_MARKERS, NUMERIC_LOOKING_SHARE, validate_file, validate_table

T = TypeVar("T")
NOBODY = 65534
TRAIN_ROWS, BATCH_ROWS = 240, 60

_BIKE_ALL = pd.read_csv(BIKE_DATA, nrows=TRAIN_ROWS + BATCH_ROWS)
BIKE = as_categories(_BIKE_ALL.head(TRAIN_ROWS).reset_index(drop=True))
BIKE_BATCH = _BIKE_ALL.tail(BATCH_ROWS).reset_index(drop=True)
BIKE_DATASET = load_config(DEMO_CONFIG).dataset.model_copy(update={"path": "bike.csv"})
BIKE_REQUIRED = {
    BIKE_DATASET.target,
    *(t.column for t in BIKE_DATASET.time_columns),
    *BIKE_DATASET.features,
    *BIKE_DATASET.numeric_columns,
    *BIKE_DATASET.categorical_columns,
    *BIKE_DATASET.segment_columns,
}
BIKE_TIME_COLUMNS = [t.column for t in BIKE_DATASET.time_columns]
CHURN = as_categories(make_churn_table(rows=200, seed=11))
CHURN_DATASET = DatasetConfig(path="churn.csv", target="churned")
CHURN_INFERRED_NUMERIC = ["tenure_months", "support_tickets", "monthly_spend"]
# Cells pandas reads as missing in a CSV, beside the project's own markers.
NA_WORDS = {"na", "nan", "-nan", "null", "none", "n/a", "<na>", "#na", "#n/a", "#n/a n/a", *MISSING_MARKERS}

CASES: Counter[str] = Counter()
_file_number = itertools.count()


def tried(name: str) -> None:
    CASES[name] += 1


@pytest.fixture(scope="module", autouse=True)
def cases_tried():
    """Reports how many generated cases each property tried (and the total) at the end of the run."""
    yield
    lines = [f"  {name}: {count}" for name, count in CASES.items()]
    note("\n".join(["hypothesis cases tried (tests/test_bad_data.py):", *lines, f"  total: {sum(CASES.values())}"]))


def examples(count: int, shrink: bool = True) -> settings:
    """Derandomized and without a database: the same `count` cases on every machine."""
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        phases=tuple(Phase) if shrink else (Phase.explicit, Phase.generate),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-data")


@pytest.fixture(scope="module")
def open_dir():
    """A folder every user may enter (pytest's own temporary folders are private to their owner)."""
    path = Path(tempfile.mkdtemp(prefix="bad-data-open-"))
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        with contextlib.suppress(OSError):
            child.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


def new_path(folder: Path, suffix: str) -> Path:
    return folder / f"case{next(_file_number)}{suffix}"


def attempt(call: Callable[[], T]) -> tuple[T | None, LifecycleError | None]:
    """The call's result, or the LifecycleError it raised; any other exception fails the test as it is."""
    try:
        return call(), None
    except LifecycleError as error:
        return None, error


def clear(error: LifecycleError | None, *names: str, longest: int = 1500) -> str:
    """The message of a clear error: there is one, it names `names` and a fix, and it stays one paragraph."""
    assert error is not None, f"expected a clear error naming {names}, but the call passed"
    message = str(error)
    assert "Fix" in message, message
    for name in names:
        assert name in message, (name, message)
    assert "\n" not in message.strip() and len(message) <= longest + sum(map(len, names)), message[:3000]
    return message


def _as_number(value: str) -> float:
    return float(pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").iloc[0])


def is_text(value: str) -> bool:
    """Text a number column cannot hold: not a number, not blank, not a missing-value marker."""
    stripped = value.strip().lower()
    return bool(stripped) and stripped not in NA_WORDS and math.isnan(_as_number(value))


WORDS = st.text(
    st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters=",;\t\"'\\"), min_size=1, max_size=12
).filter(is_text)
NAMES = (
    st.text(st.characters(categories=("L", "Nd"), include_characters="_- "), min_size=1, max_size=20)
    .map(str.strip)
    .filter(bool)
)


def with_cells(table: pd.DataFrame, column: str, rows: list[int], values: list[Any]) -> pd.DataFrame:
    """A copy of `table` with `values` written into `column` at `rows` (the column becomes plain objects)."""
    broken = table.astype({column: object})
    broken.loc[rows, column] = pd.Series(values, index=rows, dtype=object)
    return broken


def bike_file(path: Path) -> DatasetConfig:
    return BIKE_DATASET.model_copy(update={"path": str(path)})


def rows_of(table: pd.DataFrame, most: int | None = None) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(table) - 1), min_size=1, max_size=most or len(table), unique=True)


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


# --- empty tables and header-only files --------------------------------------------------------------------

EMPTY_CONTENTS = {
    "empty": "",
    "blank lines": "\n\n\n",
    "spaces": "   \n \n",
    "header only": "{header}\n",
    "header without newline": "{header}",
    "header and blank lines": "{header}\n\n\n",
    "header with a byte order mark": "\ufeff{header}\n",
}


@examples(30)
@given(
    kind=st.sampled_from(list(EMPTY_CONTENTS)),
    suffix=st.sampled_from([".csv", ".tsv", ".txt", ".csv.gz", ".csv.bz2"]),
    rows=st.integers(0, 3),
)
def test_empty_tables_and_header_only_files(workdir, kind, suffix, rows):
    tried("empty_tables_and_header_only_files")
    result, error = attempt(lambda: validate_table(BIKE.head(rows), BIKE_DATASET))
    if rows == 0:
        assert "no data rows" in clear(error, BIKE_DATASET.path)
    elif error is not None:
        clear(error, BIKE_DATASET.path)

    sep = "\t" if suffix == ".tsv" else ","
    text = EMPTY_CONTENTS[kind].format(header=sep.join(BIKE.columns)).encode()
    content = {".csv.gz": gzip.compress, ".csv.bz2": bz2.compress}.get(suffix, bytes)(text)
    path = new_path(workdir, suffix)
    path.write_bytes(content)
    _, error = attempt(lambda: read_table(path))
    assert any(words in clear(error, str(path)) for words in ("is empty", "no data rows"))
    # Monitoring reads batches with allow_empty: an empty batch is reported, not raised.
    assert read_table(path, allow_empty=True).empty
    clear(attempt(lambda: validate_file(bike_file(path)))[1], str(path))


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


# --- wrong encodings, binary garbage, files that are not what their suffix says -----------------------------


@pytest.fixture(scope="module")
def bike_csv_text() -> str:
    return BIKE.head(20).to_csv(index=False)


@examples(30)
@given(
    encoding=st.sampled_from(["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"]),
    word=st.text(st.characters(min_codepoint=0xA0, max_codepoint=0x2FFF), min_size=1, max_size=8),
    row=st.integers(0, 19),
)
def test_wrong_encodings_are_named(workdir, bike_csv_text, encoding, word, row):
    table = pd.read_csv(io.StringIO(bike_csv_text)).astype({"weathersit": object})
    table.loc[row, "weathersit"] = word
    content = table.to_csv(index=False).encode(encoding, errors="replace")
    path = new_path(workdir, ".csv")
    path.write_bytes(content)
    tried("wrong_encodings")
    result, error = attempt(lambda: validate_file(bike_file(path)))
    boms = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
    if content.startswith(boms):  # the file says its encoding: read as written
        assert error is None, str(error)
        return
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        assert "UTF-8" in clear(error, str(path))
    else:  # valid UTF-8 bytes (a BOM, or UTF-16 of plain ASCII): read, then judged as a table
        if error is not None:
            clear(error, str(path))


def _zip_bytes(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


def _parquet_bytes(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


FOREIGN = {
    "png image": (PROJECT_ROOT / "docs" / "replay_error_over_time.png").read_bytes()[:20_000],
    "gzip data": BIKE_DATA.read_bytes()[:20_000],
    "parquet": _parquet_bytes(BIKE.head(30)),
    "zip": _zip_bytes("bike.csv", BIKE.head(30).to_csv(index=False).encode()),
    "json": (PROJECT_ROOT / "data" / "example_request.json").read_bytes(),
    "python source": (PROJECT_ROOT / "lifecycle" / "errors.py").read_bytes(),
    "html": b"<!doctype html><html><body><table><tr><td>cnt</td></tr></table></body></html>",
    "pdf header": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n",
    "nul bytes": b"\x00" * 512,
}


@examples(40)
@given(
    content=st.binary(min_size=1, max_size=3000) | st.sampled_from(list(FOREIGN)).map(FOREIGN.__getitem__),
    cut=st.floats(0.05, 1.0),
    suffix=st.sampled_from([".csv", ".tsv", ".txt"]),
)
def test_binary_garbage_and_foreign_files_named_csv(workdir, content, cut, suffix):
    path = new_path(workdir, suffix)
    path.write_bytes(content[: max(1, int(len(content) * cut))])
    tried("binary_garbage_and_foreign_files")
    clear(attempt(lambda: validate_file(bike_file(path)))[1], str(path))


def _compressed(suffix: str, table: pd.DataFrame) -> bytes:
    text = table.to_csv(index=False).encode()
    if suffix == ".csv.gz":
        return gzip.compress(text)
    if suffix == ".csv.bz2":
        return bz2.compress(text)
    if suffix == ".csv.xz":
        return lzma.compress(text)
    if suffix == ".csv.zip":
        return _zip_bytes("bike.csv", text)
    return _parquet_bytes(table)


PACKED_SUFFIXES = [".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".parquet", ".pq"]


@examples(30)
@given(
    suffix=st.sampled_from(PACKED_SUFFIXES),
    packed_as=st.sampled_from(PACKED_SUFFIXES + ["plain text", "garbage"]),
    cut=st.floats(0.0, 0.98),
    garbage=st.binary(min_size=1, max_size=500),
)
def test_broken_compressed_and_parquet_files(workdir, suffix, packed_as, cut, garbage):
    if packed_as == "garbage":
        content = garbage
    elif packed_as == "plain text":
        content = BIKE.head(30).to_csv(index=False).encode()
    else:
        content = _compressed(packed_as, BIKE.head(30))
    # Truncated, or packed differently than the name says (a gzip file named .parquet, ...).
    same_format = packed_as == suffix or {packed_as, suffix} == {".parquet", ".pq"}
    assume(not same_format or cut < 0.98)
    path = new_path(workdir, suffix)
    path.write_bytes(content[: int(len(content) * cut)] if same_format else content)
    tried("broken_compressed_and_parquet_files")
    clear(attempt(lambda: validate_file(bike_file(path)))[1], str(path))


# --- paths: directories, missing, unreadable, not regular files ------------------------------------------


def read_as_other_user(path: Path) -> tuple[str, str]:
    """`read_table(path)` in a forked child: ("ok" | "lifecycle" | raw exception name | "no answer", message).

    Root reads every file, so a root child gives up root first (the test process itself never changes user);
    an alarm ends a child whose read blocks, as reading a named pipe would."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_end)
            signal.alarm(20)
            try:
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
            except OSError as error:
                os.write(write_end, json.dumps(("cannot change user", str(error))).encode())
                raise
            try:
                read_table(path)
                outcome = ("ok", "")
            except LifecycleError as error:
                outcome = ("lifecycle", str(error))
            except Exception as error:
                outcome = (type(error).__name__, str(error))
            os.write(write_end, json.dumps(outcome).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        raw = pipe.read()
    os.waitpid(child, 0)
    return tuple(json.loads(raw)) if raw else ("no answer", "the read blocked or the child died")


PATH_KINDS = {
    "a directory": "is a directory",
    "missing": "not found",
    "unsupported suffix": "unsupported type",
    "a named pipe": "not a regular file",
    "unreadable (mode 000)": "not readable",
    "inside a folder nobody may enter": "cannot be checked",
    "a name too long for the file system": "cannot be checked",
}


@examples(21)
@given(
    kind=st.sampled_from(list(PATH_KINDS)),
    stem=st.text(st.characters(categories=("L", "Nd"), include_characters="_-. "), min_size=1, max_size=16),
    suffix=st.sampled_from([".csv", ".parquet", ".csv.gz", ".xlsx", ".json", ".csv.7z", ""]),
)
def test_bad_paths_fail_with_the_path_and_a_fix(open_dir, kind, stem, suffix):
    assume(stem.strip(". ") == stem and "/" not in stem)
    supported = suffix in (".csv", ".parquet", ".csv.gz")
    assume(supported != (kind == "unsupported suffix"))
    folder = Path(tempfile.mkdtemp(dir=open_dir))
    folder.chmod(0o755)
    path = folder / f"{stem}{suffix}"
    if kind == "a directory":
        path.mkdir()
    elif kind == "unsupported suffix":
        path.write_text("a,b\n1,2\n")
    elif kind == "a named pipe":
        os.mkfifo(path)
    elif kind == "unreadable (mode 000)":
        path.write_text("a,b\n1,2\n")
        path.chmod(0)
    elif kind == "inside a folder nobody may enter":
        path.write_text("a,b\n1,2\n")
        folder.chmod(0o700 if os.geteuid() == 0 else 0)
    elif kind == "a name too long for the file system":
        path = folder / (stem * (300 // len(stem) + 1) + ".csv")
    tried("bad_paths")
    try:
        outcome, message = read_as_other_user(path)
    finally:
        folder.chmod(0o755)
    if outcome == "cannot change user":
        pytest.skip(f"running as root and cannot become another user to test permissions: {message}")
    assert outcome == "lifecycle", (outcome, message)
    assert PATH_KINDS[kind] in message and "Fix" in message and str(path) in message, message


# --- everything at once --------------------------------------------------------------------------------------

COLUMN = st.sampled_from(list(BIKE.columns))
MUTATIONS = st.one_of(
    st.tuples(st.just("drop"), COLUMN),
    st.tuples(st.just("rename"), COLUMN, NAMES),
    st.tuples(st.just("duplicate"), COLUMN),
    st.tuples(st.just("text"), COLUMN, rows_of(BIKE, most=30), WORDS),
    st.tuples(st.just("missing"), COLUMN, rows_of(BIKE)),
    st.tuples(st.just("infinite"), COLUMN, rows_of(BIKE, most=30), st.sampled_from([np.inf, -np.inf])),
    st.tuples(st.just("huge"), COLUMN, st.integers(0, TRAIN_ROWS - 1), st.integers(1_000, 50_000)),
    st.tuples(st.just("unseen"), COLUMN, rows_of(BIKE), WORDS),
    st.tuples(st.just("truncate"), st.integers(0, 5)),
    st.tuples(st.just("as text"), COLUMN),
)


def mutate(table: pd.DataFrame, mutation: tuple) -> pd.DataFrame:
    kind, *args = mutation
    if kind == "truncate":
        return table.head(args[0])
    column = args[0]
    if column not in table.columns or table.columns.duplicated().any():
        return table
    if kind == "drop":
        return table.drop(columns=column)
    if kind == "rename":
        return table.rename(columns={column: args[1]})
    if kind == "duplicate":
        return pd.concat([table, table[[column]]], axis=1)
    if kind == "as text":
        return table.astype({column: str})
    rows = [row for row in np.atleast_1d(args[1]).tolist() if row < len(table)]
    if kind == "missing":
        value = np.nan
    elif kind == "huge":
        value = "z" * args[2]
    else:  # text, unseen categories, infinities
        value = args[2]
    return with_cells(table, column, rows, [value] * len(rows)) if rows else table


@examples(60)
@given(
    mutations=st.lists(MUTATIONS, min_size=1, max_size=4),
    form=st.sampled_from([".csv", ".csv.gz", ".tsv", ".parquet"]),
)
def test_several_breaks_at_once_fail_clearly_or_give_a_consistent_report(workdir, mutations, form):
    table = BIKE
    for mutation in mutations:
        table = mutate(table, mutation)
    path = new_path(workdir, form)
    assume(form != ".parquet" or not table.columns.duplicated().any())  # pandas cannot write that file
    if form == ".parquet":
        text = {c: table[c].astype("string") for c in table.columns if table[c].dtype == object}
        table.assign(**text).to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False, sep="\t" if form == ".tsv" else ",")
    tried("several_breaks_at_once")
    result, error = attempt(lambda: validate_file(bike_file(path)))
    if error is not None:
        clear(error, str(path))
        return
    assert result.source == str(path)
    assert result.rows_out == result.rows_in - result.rows_without_target
    assert set(result.missing_values) <= set(table.columns)


# --- the real training pipeline: broken files never reach production ----------------------------------------

GUARD_MODEL = "bad_data_guard"


def guard_config(path: Path):
    config = apply_overrides(load_config(DEMO_CONFIG), model_name=GUARD_MODEL, enable_cache=False)
    dataset = config.dataset.model_copy(update={"path": str(path)})
    tree = EstimatorConfig(name="decision_tree", params={"max_depth": 8})
    training = config.training.model_copy(update={"estimator": tree})
    return config.model_copy(update={"dataset": dataset, "training": training})


@pytest.fixture(scope="module")
def guard_data(bike_slice, workdir) -> pd.DataFrame:
    table = pd.read_csv(bike_slice).head(1200)
    table.to_csv(workdir / "guard.csv", index=False)
    return table


@pytest.fixture(scope="module")
def guard_production(zenml_client, guard_data, workdir):
    from workflows.runner import run_training

    outcome = run_training(guard_config(workdir / "guard.csv"))
    assert outcome.decision.promoted and outcome.production_version == outcome.model_version
    return outcome.model_version


def _break(table: pd.DataFrame, kind: str, row: int, word: str) -> bytes:
    if kind == "target dropped":
        return table.drop(columns="cnt").to_csv(index=False).encode()
    if kind == "text in a declared numeric column":
        return with_cells(table, "temp", [row], [word]).to_csv(index=False).encode()
    if kind == "target all missing":
        return table.assign(cnt=np.nan).to_csv(index=False).encode()
    if kind == "target repeated (would leak)":
        return pd.concat([table, table[["cnt"]]], axis=1).to_csv(index=False).encode()
    if kind == "mixed UTC offsets":
        return with_cells(table, "dteday", [row], ["2011-05-01 00:00+05:00"]).to_csv(index=False).encode()
    if kind == "header only":
        return (",".join(table.columns) + "\n").encode()
    return word.encode("utf-16")


@pytest.mark.integration
@examples(4, shrink=False)
@given(
    kind=st.sampled_from(
        [
            "target dropped",
            "text in a declared numeric column",
            "target all missing",
            "target repeated (would leak)",
            "mixed UTC offsets",
            "header only",
            "utf-16 bytes",
        ]
    ),
    row=st.integers(0, 1199),
    word=WORDS,
)
def test_broken_files_fail_the_training_pipeline_and_leave_production_alone(
    guard_production, guard_data, workdir, kind, row, word
):
    from workflows.runner import production_version, run_training

    path = new_path(workdir, ".csv")
    path.write_bytes(_break(guard_data, kind, row, word))
    tried("training_pipeline_on_broken_files")
    clear(attempt(lambda: validate_file(guard_config(path).dataset))[1], str(path))
    # The pipeline itself, as if the up-front check had been skipped.
    _, error = attempt(lambda: run_training(guard_config(path)))
    assert error is not None, f"{kind}: the training pipeline accepted a broken file"
    assert production_version(GUARD_MODEL) == guard_production

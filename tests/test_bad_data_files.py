"""Malformed files thrown at ingestion (`read_table`, `validate_file`): empty and header-only files, wrong
encodings, binary garbage and foreign files named .csv, broken or mislabelled compressed and Parquet files, bad
paths (directories, missing, unreadable, named pipes, names too long), and tables broken several ways at once,
written as CSV, gzip, TSV or Parquet.

Every generated case must end in a `LifecycleError` whose message names the file and a fix, or on a documented
tolerant path: never in a raw pandas, numpy, pyarrow or decoding error. Examples are derandomized, so CI sees the
same cases every run; the number of cases tried per property is printed at the end of the module. Broken tables in
memory are in tests/test_bad_data_tables.py.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import gzip
import io
import json
import lzma
import os
import shutil
import signal
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bad_data_cases import (
    BIKE,
    BIKE_DATASET,
    NAMES,
    TRAIN_ROWS,
    WORDS,
    attempt,
    bike_file,
    cases_tried,
    clear,
    examples,
    new_path,
    rows_of,
    tried,
    with_cells,
    workdir,
)
from conftest import BIKE_DATA, PROJECT_ROOT
from hypothesis import assume, given
from hypothesis import strategies as st

from lifecycle.data import read_table
from lifecycle.errors import LifecycleError
from lifecycle.validation import validate_file, validate_table

__all__ = ["cases_tried", "workdir"]  # the shared fixtures, used by name

NOBODY = 65534


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

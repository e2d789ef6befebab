"""Reading tables from CSV or Parquet files, with errors that say what to do."""

from __future__ import annotations

import hashlib
import lzma
import os
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from lifecycle.errors import DataError

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
_CHUNK = 1 << 20


def check_data_path(path: str | Path, suffixes: tuple[str, ...] = CSV_SUFFIXES + PARQUET_SUFFIXES) -> Path:
    """The file to read, or a DataError for a missing, non-file, unreadable or unsupported path."""
    file = Path(path)
    fix = "Fix: pass --data PATH to an existing CSV or Parquet file, or set dataset.path in the config."
    try:
        exists, is_dir, is_file = file.exists(), file.is_dir(), file.is_file()
    except (OSError, ValueError) as exc:  # e.g. a folder on the way that this user may not enter
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DataError(
            f"data path {file} cannot be checked ({reason}). Fix: check the path and the permissions of its folders."
        ) from exc
    if not exists:
        raise DataError(f"data file {file} not found. {fix}")
    if is_dir:
        raise DataError(f"data path {file} is a directory, not a file. {fix}")
    if not is_file:  # a pipe or device would block or never end
        raise DataError(f"data path {file} is not a regular file. {fix}")
    if not os.access(file, os.R_OK):
        raise DataError(f"data file {file} is not readable by this user. Fix: check its permissions.")
    if not file.name.lower().endswith(suffixes):
        raise DataError(
            f"data file {file} has an unsupported type; expected one of {', '.join(suffixes)}. "
            "Fix: convert it to one of those."
        )
    return file


def file_fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes: the identity of the data a model was trained on."""
    digest = hashlib.sha256()
    with open(check_data_path(path), "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def as_categories(table: pd.DataFrame) -> pd.DataFrame:
    """Text columns that repeat their values as pandas categories: the same values in a fraction of the
    memory, and far cheaper to store as artifacts and to pass between steps than Python strings."""
    repeating = {
        column: table[column].astype("category")
        for column in table.columns
        if table[column].dtype == object and table[column].nunique() * 2 <= len(table)
    }
    return table.assign(**repeating) if repeating else table


def read_table(path: str | Path, allow_empty: bool = False) -> pd.DataFrame:
    """Load a CSV (optionally compressed) or Parquet file into a DataFrame; repeating text becomes categories.

    `allow_empty`: a file without rows (or an empty file) gives an empty table instead of an error."""
    file = check_data_path(path)
    name = file.name.lower()
    try:
        if name.endswith(PARQUET_SUFFIXES):
            table = pd.read_parquet(file)
            header = [str(column).strip() for column in table.columns]
        else:
            sep = "\t" if name.endswith(".tsv") else ","
            table = pd.read_csv(file, sep=sep, low_memory=False)
            if table.shape[1] == 1 and ";" in str(table.columns[0]):
                sep = ";"  # European-style CSV
                table = pd.read_csv(file, sep=sep, low_memory=False)
            header = _written_header(file, sep)
    except pd.errors.EmptyDataError as exc:
        if allow_empty:
            return pd.DataFrame()
        raise DataError(f"data file {file} is empty. Fix: point --data at a file with a header and rows.") from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file {file} is not UTF-8 text ({exc.reason} at byte {exc.start}). Fix: re-save it as UTF-8 CSV."
        ) from exc
    except (pd.errors.ParserError, ValueError, OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        reason = " ".join(str(exc).split())  # pandas' parser messages end in a newline: keep one paragraph
        raise DataError(
            f"data file {file} could not be parsed: {reason}. Fix: check that it is a valid CSV/Parquet file."
        ) from exc
    if table.empty and not allow_empty:
        raise DataError(
            f"data file {file} has no data rows (columns: {', '.join(map(str, table.columns)) or 'none'}). "
            "Fix: point --data at a file with rows."
        )
    table.columns = [str(column).strip() for column in table.columns]
    duplicated = sorted(name for name, count in Counter(header).items() if name and count > 1)
    if duplicated:
        raise DataError(
            f"data file {file} has duplicated column names: {', '.join(duplicated)}. "
            "Fix: give each column a unique name (spaces around a name do not make it another one)."
        )
    nested = [column for column in table.columns if _holds_containers(table[column])]
    if nested:
        raise DataError(
            f"data file {file} has nested (list, map or struct) columns: {', '.join(nested)}. "
            "Fix: flatten them into plain columns, or drop them from the file."
        )
    return as_categories(table)


def _written_header(file: Path, sep: str) -> list[str]:
    """Column names as the file writes them: pandas renames a repeated name (`x`, `x.1`), hiding the duplicate."""
    first = pd.read_csv(file, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
    return [str(value).strip() for value in first.iloc[0]] if len(first) else []


def _holds_containers(series: pd.Series) -> bool:
    """Parquet list/struct/map columns arrive as arrays or dicts: one type per column, so one cell tells."""
    if series.dtype != object:
        return False
    values = series.dropna()
    return bool(len(values)) and isinstance(values.iloc[0], list | tuple | dict | set | np.ndarray)


def table_schema(table: pd.DataFrame) -> dict[str, str]:
    return {column: str(dtype) for column, dtype in table.dtypes.items()}

"""Reading tables from CSV or Parquet files, with errors that say what to do."""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import hashlib
import io
import lzma
import os
import re
import zipfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifecycle.errors import DataError

if TYPE_CHECKING:
    from lifecycle.config import CsvFormat

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


def read_table(
    path: str | Path, allow_empty: bool = False, csv_format: CsvFormat | Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Load a CSV (optionally compressed) or Parquet file into a DataFrame; repeating text becomes categories.

    A CSV is read the way its author wrote it: separator, decimal mark and encoding are detected per file (see
    `CsvFormat`), and `csv_format` (the config's `dataset.csv`) fixes any of them.
    `allow_empty`: a file without rows (or an empty file) gives an empty table instead of an error."""
    from lifecycle.config import CsvFormat

    file = check_data_path(path)
    name = file.name.lower()
    fmt = csv_format if isinstance(csv_format, CsvFormat) else CsvFormat(**dict(csv_format or {}))
    encoding = fmt.encoding or _encoding_from_bom(file)
    try:
        if name.endswith(PARQUET_SUFFIXES):
            table = pd.read_parquet(file)
            header = [str(column).strip() for column in table.columns]
        else:
            sep = fmt.separator or _detect_separator(file, encoding, "\t" if name.endswith(".tsv") else ",")
            table = _read_csv(file, sep, encoding, fmt)
            header = _written_header(file, sep, encoding)
    except pd.errors.EmptyDataError as exc:
        if allow_empty:
            return pd.DataFrame()
        raise DataError(f"data file {file} is empty. Fix: point --data at a file with a header and rows.") from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file {file} is not {encoding} text ({exc.reason} at byte {exc.start}). Fix: re-save it as UTF-8 "
            "CSV, or set its encoding under dataset.csv.encoding in the config (e.g. cp1252 or latin-1)."
        ) from exc
    except LookupError as exc:  # an encoding name Python does not know
        raise DataError(f"{exc}. Fix: set dataset.csv.encoding to an encoding Python knows, e.g. cp1252.") from exc
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


SEPARATORS = (",", ";", "\t", "|")
# A number written with a decimal comma, optionally with `.` grouping thousands: 12,25  -0,5  1.234,5
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?(\d{1,3}(\.\d{3})+|\d*),\d+\s*$")
_THOUSANDS_DOTS = re.compile(r"^\s*[+-]?\d{1,3}(\.\d{3})+(,\d+)?\s*$")
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_SNIFF_BYTES = 64 * 1024


def _open_bytes(file: Path) -> io.BufferedIOBase | IO[bytes]:
    """The file's bytes, decompressed as pandas would by its suffix."""
    name = file.name.lower()
    if name.endswith(".gz"):
        return gzip.open(file, "rb")
    if name.endswith(".bz2"):
        return bz2.open(file, "rb")
    if name.endswith(".xz"):
        return lzma.open(file, "rb")
    if name.endswith(".zip"):
        archive = zipfile.ZipFile(file)
        members = [info for info in archive.infolist() if not info.is_dir()]
        if not members:
            raise DataError(f"data file {file} is an empty zip archive. Fix: zip the CSV file itself.")
        return archive.open(members[0])
    return open(file, "rb")


def _head(file: Path) -> bytes:
    with _open_bytes(file) as handle:
        return handle.read(_SNIFF_BYTES)


def _encoding_from_bom(file: Path) -> str:
    """The encoding a byte-order mark names (UTF-16 is Excel's "Unicode text"), else UTF-8 (a UTF-8 BOM removed)."""
    if file.name.lower().endswith(PARQUET_SUFFIXES):
        return "utf-8"
    try:
        head = _head(file)[:4]
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError):
        return "utf-8-sig"  # the read that follows names the problem
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # before UTF-16: UTF-32 LE starts alike
        return "utf-32"
    return "utf-16" if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"


def _detect_separator(file: Path, encoding: str, default: str) -> str:
    """The separator that splits the first lines into the same number (more than one) of fields, the most fields
    winning; `default` when none does (a one-column file)."""
    try:
        text = _head(file).decode(encoding, errors="ignore")
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError):
        return default
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if len(text) >= _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut short
    if not lines:
        return default
    best, best_fields = default, 1
    for sep in (default, *[s for s in SEPARATORS if s != default]):
        counts = {len(row) for row in csv.reader(lines, delimiter=sep)}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = sep, fields
    return best


def _read_csv(file: Path, sep: str, encoding: str, fmt: CsvFormat) -> pd.DataFrame:
    """Read with the given marks; with no decimal mark configured and a separator other than `,`, text columns
    written with decimal commas are read again as numbers (each column decided on its own)."""
    options: dict[str, Any] = {"sep": sep, "encoding": encoding, "low_memory": False}
    if fmt.decimal or fmt.thousands:
        return pd.read_csv(file, decimal=fmt.decimal or ".", thousands=fmt.thousands, **options)
    table = pd.read_csv(file, **options)
    if sep == ",":
        return table
    commas = [column for column in table.columns if table[column].dtype == object and _decimal_commas(table[column])]
    if not commas:
        return table
    grouped = any(_THOUSANDS_DOTS.match(str(value)) for c in commas for value in table[c].dropna().head(1000))
    thousands = "." if grouped else None
    again = pd.read_csv(file, decimal=",", thousands=thousands, usecols=commas, **options)
    numeric = {column: again[column] for column in commas if pd.api.types.is_numeric_dtype(again[column])}
    return table.assign(**numeric) if numeric else table


def _decimal_commas(series: pd.Series) -> bool:
    """Whether a text column holds numbers written with a decimal comma (every non-blank value a number, at
    least one with a comma)."""
    values = pd.Series(pd.unique(series.dropna().astype(str).str.strip()))
    values = values[values != ""]
    if values.empty:
        return False
    commas = values.str.match(_DECIMAL_COMMA)
    return bool(commas.any() and (commas | values.str.match(_INTEGER) | values.str.match(_THOUSANDS_DOTS)).all())


def _written_header(file: Path, sep: str, encoding: str = "utf-8-sig") -> list[str]:
    """Column names as the file writes them: pandas renames a repeated name (`x`, `x.1`), hiding the duplicate."""
    first = pd.read_csv(file, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False, encoding=encoding)
    return [str(value).strip() for value in first.iloc[0]] if len(first) else []


def _holds_containers(series: pd.Series) -> bool:
    """Parquet list/struct/map columns arrive as arrays or dicts: one type per column, so one cell tells."""
    if series.dtype != object:
        return False
    values = series.dropna()
    return bool(len(values)) and isinstance(values.iloc[0], list | tuple | dict | set | np.ndarray)


def table_schema(table: pd.DataFrame) -> dict[str, str]:
    return {column: str(dtype) for column, dtype in table.dtypes.items()}

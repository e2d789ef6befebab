"""Schema checks and column typing for a raw table.

Schema breaks (a missing column, a target that is all null, text in a numeric column) stop the run with a
message naming the column, the file and the fix. Gaps that a model can live with (missing feature values,
infinities, empty or identifier-like columns) take a documented tolerant path and are reported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from lifecycle.config import DatasetConfig, Task
from lifecycle.errors import DataError

# An inferred text column is taken for a broken numeric one when this share of its values are numbers.
NUMERIC_LOOKING_SHARE = 0.9
# A text column with (almost) one distinct value per row is an identifier, not a feature.
IDENTIFIER_UNIQUE_SHARE = 0.95
IDENTIFIER_MIN_ROWS = 50
# Text that looks like a calendar date (2024-01-31, 31/01/2024, 1/31/24, with or without a time).
DATE_PATTERN = r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4})([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"
# An integer target with at most this many distinct values is taken for class labels.
CLASSIFICATION_MAX_INT_CLASSES = 20
# Cells that mean "no value" in exported tables; pandas already reads NA, N/A, null, NaN and blanks as missing.
MISSING_MARKERS = {"?", "-", "--", ".", "none", "missing", "unknown", "n.a.", "#n/a"}


class FeatureSchema(BaseModel):
    """What the model consumes: the resolved task and the typed feature columns."""

    target: str
    task: Task
    numeric_features: list[str]
    categorical_features: list[str]
    # Categorical features holding only true/false: requests must send true, false (or the words) or null.
    boolean_features: list[str] = Field(default_factory=list)
    time_columns: list[str] = Field(default_factory=list)
    time_formats: dict[str, str] = Field(default_factory=dict)
    segment_columns: list[str] = Field(default_factory=list)
    classes: list[Any] = Field(default_factory=list)
    # How the training file's CSV is written, as configured (dataset.csv); batches of this model are read alike.
    csv_format: dict[str, str] = Field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return self.numeric_features + self.categorical_features

    @property
    def model_inputs(self) -> list[str]:
        """Columns a request to the model must carry: features and time columns (calendar features)."""
        return self.time_columns + self.features


class DataQualityReport(BaseModel):
    source: str
    rows_in: int
    rows_out: int
    rows_without_target: int
    missing_values: dict[str, int]
    infinities_replaced: dict[str, int] = Field(default_factory=dict)
    dropped_columns: dict[str, str] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    time_span: dict[str, list[str]] = Field(default_factory=dict)  # time column -> [first, last], ISO text


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _examples(values: pd.Series, limit: int = 3) -> str:
    shown = ", ".join(f"{_short(value)} (row {index + 2})" for index, value in values.head(limit).items())
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return shown + more


def _present(table: pd.DataFrame) -> str:
    columns = list(map(str, table.columns))
    listed = ", ".join(columns[:30]) + (f", … ({len(columns)} in all)" if len(columns) > 30 else "")
    return listed


def by_unique(series: pd.Series, convert: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`convert` applied once per distinct value and mapped back: text columns repeat few values, and string
    parsing per cell dominates validation time on large tables. Missing cells stay missing."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    uniques = pd.unique(series.dropna())
    if len(uniques) * 2 > len(series):
        return convert(series)
    mapping = pd.Series(convert(pd.Series(uniques, dtype=series.dtype)).to_numpy(), index=uniques)
    return series.map(mapping)


def non_numeric_cells(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The column as numbers, and the original cells that are not numbers (row index kept).

    Blank cells and missing-value markers such as `?` become missing values, not errors.
    """
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype(float), series.iloc[:0]
    converted = pd.to_numeric(by_unique(series, lambda s: pd.to_numeric(s, errors="coerce")), errors="coerce")
    bad = series[converted.isna() & series.notna()]
    if len(bad):
        text = by_unique(bad, lambda s: s.astype(str).str.strip().str.lower())
        bad = bad[(text != "") & ~text.isin(MISSING_MARKERS)]
    return converted, bad


MISSING_CATEGORY = "__missing__"
_NUMERAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_BOOLEAN_TEXT = {"true": "True", "false": "False"}


def _number_text(number: Decimal) -> str:
    """A number's one written form: no leading zeros, no trailing fraction zeros, no exponent, no `-0`."""
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def canonical_category(value: Any) -> str:
    """The one text a categorical value stands for, however it arrives: missing (None, NaN, NaT, "") as one
    category; booleans and the words true/false (any case) as `True`/`False`; numbers and numerals by their value
    (1, 1.0, "1", "001", "1.0" are all `1`), so a code column read as integers, as floats (gaps make pandas read it
    so) or sent as JSON text means the same category everywhere; other text as written, trimmed."""
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING_CATEGORY
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return MISSING_CATEGORY
        return _number_text(Decimal(repr(float(value)))) if math.isfinite(value) else repr(float(value))
    text = str(value).strip()
    if not text:
        return MISSING_CATEGORY
    if text.lower() in _BOOLEAN_TEXT:
        return _BOOLEAN_TEXT[text.lower()]
    if _NUMERAL.fullmatch(text):
        try:
            return _number_text(Decimal(text))
        except InvalidOperation:
            return text
    return text


def category_strings(series: pd.Series) -> pd.Series:
    """`canonical_category` of every cell, each distinct value converted once."""
    values = series.astype(object) if isinstance(series.dtype, pd.CategoricalDtype) else series
    seen: dict[tuple[type, Any], str] = {}
    out = []
    for value in values.to_numpy(dtype=object):
        try:
            key = (type(value), value)
            text = seen.get(key)
            if text is None:
                text = seen[key] = canonical_category(value)
        except TypeError:  # an unhashable cell
            text = canonical_category(value)
        out.append(text)
    return pd.Series(out, index=series.index, dtype=object, name=series.name)


BOOLEAN_WORDS = ("true", "false")


def is_boolean_value(value: Any) -> bool:
    """True/False, or the words true/false in any case (how CSV files and JSON clients write them)."""
    if isinstance(value, bool | np.bool_):
        return True
    return isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS


def is_boolean_column(series: pd.Series) -> bool:
    """A column of booleans: pandas' bool dtype, or (with gaps) only True/False values and missing cells."""
    if pd.api.types.is_bool_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series):
        return False
    values = pd.unique(series.dropna().astype(object))
    return bool(len(values)) and all(is_boolean_value(value) for value in values)


def infer_task(target: pd.Series) -> Task:
    """Regression for a numeric target with many values, classification otherwise."""
    values = target.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "classification"
    is_integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
    if is_integral and values.nunique() <= CLASSIFICATION_MAX_INT_CLASSES:
        return "classification"
    return "regression"


def _check_required(table: pd.DataFrame, dataset: DatasetConfig, source: str) -> None:
    duplicated = sorted({str(c) for c in table.columns[table.columns.duplicated()]})
    if duplicated:
        raise DataError(
            f"{source} has duplicated column names: {', '.join(duplicated)}. Fix: give each column a unique name."
        )
    roles = {dataset.target: "target"}
    for time_column in dataset.time_columns:
        roles.setdefault(time_column.column, "time column")
    for names, role in (
        (dataset.features, "feature"),
        (dataset.numeric_columns, "numeric column"),
        (dataset.categorical_columns, "categorical column"),
        (dataset.segment_columns, "segment column"),
    ):
        for name in names:
            roles.setdefault(name, role)
    missing = [(name, role) for name, role in roles.items() if name not in table.columns]
    if missing:
        described = ", ".join(f"`{name}` ({role})" for name, role in missing)
        target_missing = any(role == "target" for _, role in missing)
        fix = (
            "Fix: pass --target with one of the columns present, or add the column to the file."
            if target_missing
            else "Fix: add the column to the file, or remove it from the dataset section of the config."
        )
        raise DataError(f"column {described} missing from {source}; columns present: {_present(table)}. {fix}")


def _resolve_target(
    table: pd.DataFrame, dataset: DatasetConfig, source: str
) -> tuple[pd.DataFrame, Task, list[Any], int]:
    target = table[dataset.target]
    if target.isna().all():
        raise DataError(
            f"target column `{dataset.target}` in {source} is empty (all {len(table)} values are missing). "
            "Fix: fill in the target or choose another column with --target."
        )
    rows_without_target = int(target.isna().sum())
    table = table[target.notna()]
    if isinstance(table[dataset.target].dtype, pd.CategoricalDtype):  # labels as plain values, not categories
        table = table.assign(**{dataset.target: table[dataset.target].astype(object)})
    task = dataset.task or infer_task(table[dataset.target])
    classes: list[Any] = []
    if task == "regression":
        converted, bad = non_numeric_cells(table[dataset.target])
        if len(bad):
            raise DataError(
                f"target column `{dataset.target}` in {source} must be numeric for regression but holds "
                f"{_examples(bad)}. Fix: clean those cells, or use --task classification if it is a label."
            )
        table = table.assign(**{dataset.target: converted.astype(float)})
        if not np.isfinite(table[dataset.target]).all():
            raise DataError(
                f"target column `{dataset.target}` in {source} holds infinite values. Fix: remove those rows."
            )
    else:
        classes = sorted(table[dataset.target].unique().tolist(), key=str)
        if len(classes) < 2:
            raise DataError(
                f"target column `{dataset.target}` in {source} has a single class ({classes[0]!r}); "
                "classification needs at least two. Fix: check the file or the --target column."
            )
    return table, task, classes, rows_without_target


def validate_table(
    table: pd.DataFrame, dataset: DatasetConfig, source: str | None = None
) -> tuple[pd.DataFrame, FeatureSchema, DataQualityReport]:
    """Check `table` against `dataset`, type its columns, and return the clean table with its schema."""
    source = source or dataset.path
    if table.empty:
        raise DataError(f"{source} has no data rows. Fix: point --data at a file with rows.")
    _check_required(table, dataset, source)
    rows_in = len(table)
    table, task, classes, rows_without_target = _resolve_target(table, dataset, source)

    time_columns = [t.column for t in dataset.time_columns]
    time_span: dict[str, list[str]] = {}
    for time_column in dataset.time_columns:
        parsed = parse_time_column(table[time_column.column], time_column.format, source)
        time_span[time_column.column] = [parsed.min().isoformat(), parsed.max().isoformat()]

    excluded = {dataset.target, *time_columns, *dataset.drop_columns}
    candidates = dataset.features or [c for c in table.columns if c not in excluded]
    numeric: list[str] = []
    categorical: list[str] = []
    booleans: list[str] = []
    dropped: dict[str, str] = {}
    infinities: dict[str, int] = {}
    warnings: list[str] = []
    columns: dict[str, pd.Series] = {}

    for column in candidates:
        series = table[column]
        if series.isna().all():
            dropped[column] = "all values missing"
            continue
        if column in dataset.categorical_columns:
            categorical.append(column)
            if is_boolean_column(series):
                booleans.append(column)
            continue
        declared_numeric = column in dataset.numeric_columns
        if is_boolean_column(series):
            categorical.append(column)
            booleans.append(column)
            continue
        if not pd.api.types.is_numeric_dtype(series):
            converted, bad = non_numeric_cells(series)
            non_null = int(series.notna().sum())
            looks_numeric = non_null and (non_null - len(bad)) / non_null >= NUMERIC_LOOKING_SHARE
            if declared_numeric or (looks_numeric and len(bad)):
                if len(bad):
                    why = "is declared numeric" if declared_numeric else "looks numeric"
                    raise DataError(
                        f"column `{column}` in {source} {why} but holds non-numeric values: {_examples(bad)}. "
                        f"Fix: clean those cells, or list `{column}` under dataset.categorical_columns."
                    )
                series = converted
            elif looks_numeric:
                series = converted
            else:
                looks_like_dates = by_unique(series.dropna(), lambda s: s.astype(str).str.match(DATE_PATTERN))
                if looks_like_dates.astype(bool).mean() >= NUMERIC_LOOKING_SHARE:
                    dropped[column] = "dates: pass --time-column to order rows by it and derive calendar features"
                    continue
                unique_share = series.nunique() / max(non_null, 1)
                if non_null >= IDENTIFIER_MIN_ROWS and unique_share >= IDENTIFIER_UNIQUE_SHARE:
                    dropped[column] = "identifier-like (a distinct value per row)"
                    continue
                categorical.append(column)
                continue
        series = series.astype(float)
        infinite = np.isinf(series)
        if infinite.any():
            infinities[column] = int(infinite.sum())
            series = series.mask(infinite)
            warnings.append(f"`{column}`: {infinities[column]} infinite values treated as missing")
        columns[column] = series
        numeric.append(column)

    if not numeric and not categorical:
        raise DataError(
            f"{source} has no usable feature columns (target `{dataset.target}`, dropped: "
            f"{', '.join(dropped) or 'none'}). Fix: add feature columns or adjust dataset.features/drop_columns."
        )

    keep = list(dict.fromkeys([*time_columns, *numeric, *categorical, *dataset.segment_columns, dataset.target]))
    clean = table.assign(**columns)[keep].reset_index(drop=True)
    for column in categorical:
        share = clean[column].isna().mean()
        if share > 0.5:
            warnings.append(f"`{column}`: {share:.0%} missing")
    schema = FeatureSchema(
        target=dataset.target,
        task=task,
        numeric_features=numeric,
        categorical_features=categorical,
        boolean_features=booleans,
        time_columns=time_columns,
        time_formats={t.column: t.format for t in dataset.time_columns if t.format},
        segment_columns=list(dataset.segment_columns),
        classes=classes,
        csv_format=dataset.csv.model_dump(exclude_none=True),
    )
    report = DataQualityReport(
        source=source,
        rows_in=rows_in,
        rows_out=len(clean),
        rows_without_target=rows_without_target,
        missing_values={column: int(count) for column, count in clean[schema.features].isna().sum().items()},
        infinities_replaced=infinities,
        dropped_columns=dropped,
        warnings=warnings,
        time_span=time_span,
    )
    return clean, schema, report


def parse_time_column(series: pd.Series, fmt: str | None, source: str) -> pd.Series:
    """The column as datetimes; a DataError names the cells that do not parse."""
    try:
        parsed = pd.to_datetime(by_unique(series, lambda s: pd.to_datetime(s, format=fmt, errors="coerce")))
    except (ValueError, TypeError) as exc:  # e.g. times with different UTC offsets
        raise DataError(
            f"time column `{series.name}` in {source} mixes times that cannot be ordered together ({exc}). "
            "Fix: write all its times in one time zone (or all without an offset)."
        ) from exc
    bad = series[parsed.isna() & series.notna()]
    if series.isna().any() or len(bad):
        shown = _examples(bad) if len(bad) else f"{int(series.isna().sum())} empty cells"
        hint = f" with format {fmt!r}" if fmt else ""
        raise DataError(
            f"time column `{series.name}` in {source} has values that are not times{hint}: {shown}. "
            "Fix: correct those cells, or set the column's `format` under dataset.time_columns."
        )
    return parsed


def validate_file(dataset: DatasetConfig) -> DataQualityReport:
    """Read and validate the configured file without running anything: bad data fails here, fast."""
    from lifecycle.data import read_table

    return validate_table(read_table(dataset.path, csv_format=dataset.csv), dataset)[2]

"""What the drift decision needs from a batch too large for one process, computed on Spark over the whole batch.

Each task reads its slice as `read_table` would (lifecycle/spark_engine.py) and runs the in-memory path's own
`check_batch` on it; the driver adds up the slices' checks and, per monitored column, the counts the drift tests
need: category counts (categories read as the model reads them), and for numbers the count of distinct values
(up to 6), their counts while there are few, and a histogram over the batch's range. From these, the tests
Evidently's DataDriftPreset picks by default for a large reference (more than 1,000 rows) are computed over the
whole batch:

- a numeric column with more than 5 distinct values: normed Wasserstein distance (threshold 0.1), the reference's
  own values against the batch's histogram (bin centres weighted by counts: off by at most half a bin width over
  the reference's standard deviation, 0.003 with 1,000 bins over 6 standard deviations);
- a categorical column, or a numeric one with at most 5 distinct values: Jensen-Shannon distance of the value
  shares (threshold 0.1), exact.

Tests that need every raw value (Kolmogorov-Smirnov, chi-square, the z-test: Evidently's choice for a reference of
1,000 rows or fewer) are taken from the Evidently report on a seeded sample of the batch, and say so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifecycle.monitoring import (
    BatchCheck,
    ColumnDrift,
    DriftSummary,
    check_batch,
    monitored_columns,
    predictions_note,
)
from lifecycle.validation import FeatureSchema, category_strings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DRIFT_THRESHOLD = 0.1  # Evidently's default for both distances
LARGE_REFERENCE = 1000  # Evidently picks the distances above this many reference rows
# The method names Evidently's report gives these tests (lifecycle/monitoring.py reads them from its snapshot).
WASSERSTEIN = "Wasserstein distance (normed)"
JENSEN_SHANNON = "Jensen-Shannon distance"
FEW_VALUES = 5  # a numeric column with at most this many distinct values is compared by its value shares


@dataclass
class ColumnCounts:
    """One column of the batch, summed over slices."""

    non_null: int = 0
    low: float = np.inf
    high: float = -np.inf
    values: dict[str, int] | None = field(default_factory=dict)  # value -> count while few (None: many)
    histogram: list[int] = field(default_factory=list)


@dataclass
class BatchStatistics:
    check: BatchCheck
    columns: dict[str, ColumnCounts]


def merge_checks(checks: list[dict[str, Any]]) -> BatchCheck:
    """The whole batch's check from its slices' (counts added, unseen categories joined; a column is all-null when
    it is in every non-empty slice)."""
    merged = BatchCheck(rows=sum(c["rows"] for c in checks))
    non_empty = [c for c in checks if c["rows"]]
    merged.missing_columns = list(checks[0]["missing_columns"]) if checks else []  # the same in every slice
    if non_empty:
        common = set(non_empty[0]["all_null_columns"]).intersection(*(c["all_null_columns"] for c in non_empty))
        merged.all_null_columns = [c for c in non_empty[0]["all_null_columns"] if c in common]
    for key in ("non_numeric_values", "out_of_range", "missing_values"):
        total: dict[str, int] = {}
        for check in checks:
            for column, count in check[key].items():
                total[column] = total.get(column, 0) + count
        setattr(merged, key, total)
    unseen: dict[str, set[str]] = {}
    for check in checks:
        for column, values in check["unseen_categories"].items():
            unseen.setdefault(column, set()).update(values)
    merged.unseen_categories = {column: sorted(values) for column, values in unseen.items()}
    merged.predictable_rows = sum(c["predictable_rows"] for c in checks)
    merged.has_labels = any(c["has_labels"] for c in checks)
    merged.predictions_note = predictions_note(merged)
    return merged


def slice_counts(
    table: pd.DataFrame, schema: FeatureSchema, reference: pd.DataFrame, edges: dict[str, np.ndarray] | None
) -> dict[str, Any]:
    """One slice's check and column counts (pass 1), or its histograms on `edges` (pass 2)."""
    prepared, check = check_batch(table, schema, reference)
    columns = [c for c in monitored_columns(schema) if c in prepared.columns]
    if edges is not None:
        return {
            column: np.histogram(prepared[column].dropna().to_numpy(dtype=float), bins)[0].tolist()
            for column, bins in edges.items()
            if column in prepared.columns
        }
    counts: dict[str, Any] = {}
    for column in columns:
        values = prepared[column].dropna()
        if column in schema.categorical_features:  # missing is a category of its own, as the report reads them
            shares = category_strings(prepared[column]).value_counts()
            counts[column] = {"non_null": len(values), "values": {str(k): int(v) for k, v in shares.items()}}
            continue
        numbers = values.to_numpy(dtype=float)
        distinct = pd.Series(numbers).value_counts()
        counts[column] = {
            "non_null": len(numbers),
            "low": float(numbers.min()) if len(numbers) else None,
            "high": float(numbers.max()) if len(numbers) else None,
            "values": {repr(float(k)): int(v) for k, v in distinct.items()} if len(distinct) <= FEW_VALUES else None,
        }
    return {"check": check.model_dump(), "columns": counts}


def merge_counts(slices: list[dict[str, Any]], schema: FeatureSchema) -> dict[str, ColumnCounts]:
    """The slices' column counts added up (a numeric column's value counts are dropped once it has many values)."""
    merged: dict[str, ColumnCounts] = {}
    for part in slices:
        for column, counts in part["columns"].items():
            total = merged.setdefault(column, ColumnCounts())
            total.non_null += counts["non_null"]
            if counts.get("low") is not None:
                total.low, total.high = min(total.low, counts["low"]), max(total.high, counts["high"])
            if total.values is None:
                continue
            if counts["values"] is None:
                total.values = None
                continue
            for value, count in counts["values"].items():
                total.values[value] = total.values.get(value, 0) + count
            if column not in schema.categorical_features and len(total.values) > FEW_VALUES:
                total.values = None
    return merged


def _few_values(reference: pd.Series, counts: ColumnCounts) -> bool:
    """Evidently's rule: at most 5 distinct values in reference and batch together."""
    if counts.values is None:
        return False
    union = set(map(float, np.unique(reference.dropna().to_numpy(dtype=float))))
    return len(union | {float(v) for v in counts.values}) <= FEW_VALUES


def histogram_edges(
    columns: dict[str, ColumnCounts], schema: FeatureSchema, reference: pd.DataFrame, bins: int
) -> dict[str, np.ndarray]:
    """Equal-width bins over the batch's range, for the numeric columns that take many values."""
    edges = {}
    for column, counts in columns.items():
        if column not in schema.numeric_features or not counts.non_null or column not in reference.columns:
            continue
        if not _few_values(reference[column], counts):
            low, high = counts.low, counts.high
            edges[column] = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    return edges


def _wasserstein_normed(reference: np.ndarray, edges: np.ndarray, counts: list[int]) -> float:
    from scipy.stats import wasserstein_distance

    centres = (edges[:-1] + edges[1:]) / 2
    weights = np.asarray(counts, dtype=float)
    keep = weights > 0
    norm = max(float(np.std(reference)), 0.001)
    return float(wasserstein_distance(reference, centres[keep], None, weights[keep]) / norm)


def _jensen_shannon(reference: pd.Series, current: dict[str, int]) -> float:
    from scipy.spatial import distance

    ref_counts = reference.value_counts()
    keys = list(dict.fromkeys([*ref_counts.index, *current]))
    ref = np.array([ref_counts.get(k, 0) for k in keys], dtype=float) / len(reference)
    total = sum(current.values())
    cur = np.array([current.get(k, 0) for k in keys], dtype=float) / total
    return float(distance.jensenshannon(ref, cur))


def drift_from_counts(
    reference: pd.DataFrame,
    schema: FeatureSchema,
    columns: dict[str, ColumnCounts],
    histograms: dict[str, list[int]],
    edges: dict[str, np.ndarray],
    rows: int,
    min_rows: int,
    sample: DriftSummary,
    sample_rows: int,
) -> DriftSummary:
    """The drift summary over the whole batch: Wasserstein / Jensen-Shannon from the counts where Evidently's
    default picks them, the sample report's verdict for the other columns (their method says so)."""
    judged_columns = [c for c in monitored_columns(schema) if c in columns and columns[c].non_null]
    if rows < min_rows or not judged_columns:
        reason = (
            f"batch has {rows} rows; drift is judged from {min_rows}"
            if rows < min_rows
            else "no monitored column present"
        )
        return DriftSummary(judged=False, reason=reason)
    judged: dict[str, ColumnDrift] = {}
    for column in judged_columns:
        ref = reference[column].dropna()
        counts = columns[column]
        if len(ref) > LARGE_REFERENCE:
            if column in schema.categorical_features:
                score = _jensen_shannon(category_strings(reference[column]), counts.values or {})
                judged[column] = ColumnDrift(score=score, method=JENSEN_SHANNON, drifted=score >= DRIFT_THRESHOLD)
                continue
            ref_numbers = ref.to_numpy(dtype=float)
            if counts.values is not None and _few_values(ref, counts):
                current = {repr(float(k)): v for k, v in counts.values.items()}
                score = _jensen_shannon(pd.Series([repr(float(v)) for v in ref_numbers]), current)
                judged[column] = ColumnDrift(score=score, method=JENSEN_SHANNON, drifted=score >= DRIFT_THRESHOLD)
                continue
            if column in histograms:
                score = _wasserstein_normed(ref_numbers, edges[column], histograms[column])
                judged[column] = ColumnDrift(score=score, method=WASSERSTEIN, drifted=score >= DRIFT_THRESHOLD)
                continue
        if column in sample.columns:
            on_sample = sample.columns[column]
            judged[column] = ColumnDrift(
                score=on_sample.score, method=f"{on_sample.method} (sample of {sample_rows})", drifted=on_sample.drifted
            )
    return DriftSummary.of(judged)


def statistics_on_spark(
    spark: SparkSession, path: str, schema: FeatureSchema, reference: pd.DataFrame, bins: int
) -> tuple[BatchCheck, dict[str, ColumnCounts], dict[str, list[int]], dict[str, np.ndarray], DataFrame, str, str]:
    """Two passes over the batch on the cluster: checks and column counts, then histograms of the numeric
    columns over the batch's range. Only these sums come back to the driver."""
    from lifecycle.spark_engine import PATH, START, _as_read, read_input

    frame, kind, header = read_input(spark, path, schema)
    shipped = spark.sparkContext.broadcast(reference)

    def run(edges: dict[str, np.ndarray] | None) -> list[dict[str, Any]]:
        def task(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for part in frames:
                table = _as_read(part.drop(columns=[PATH, START]), kind, header, schema)
                yield pd.DataFrame({"counts": [json.dumps(slice_counts(table, schema, shipped.value, edges))]})

        return [json.loads(row["counts"]) for row in frame.mapInPandas(task, "counts string").collect()]

    slices = run(None)
    check = merge_checks([s["check"] for s in slices])
    columns = merge_counts(slices, schema)
    edges = histogram_edges(columns, schema, reference, bins)
    histograms: dict[str, list[int]] = {}
    if edges:
        for part in run(edges):
            for column, counts in part.items():
                total = histograms.setdefault(column, [0] * (len(edges[column]) - 1))
                histograms[column] = [a + b for a, b in zip(total, counts, strict=True)]
    shipped.unpersist()
    return check, columns, histograms, edges, frame, kind, header


def seeded_sample(
    spark: SparkSession,
    frame: DataFrame,
    kind: str,
    header: str,
    schema: FeatureSchema,
    rows: int,
    size: int,
    seed: int,
) -> pd.DataFrame:
    """About `size` rows drawn with `seed` (the same rows every time for the same batch), read as `read_table`."""
    from lifecycle.spark_engine import PATH, START, _as_read

    fraction = min(1.0, size / rows) if rows else 1.0
    picked = frame.sample(withReplacement=False, fraction=fraction, seed=seed).orderBy(PATH, START)
    raw = picked.drop(PATH, START).toPandas()
    return _as_read(raw, kind, header, schema)

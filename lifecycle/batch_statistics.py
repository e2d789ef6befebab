"""What the drift decision needs from a batch too large for one process, computed on Spark over the whole batch.

Each task reads its slice as `read_table` would (lifecycle/spark_engine.py) and runs the in-memory path's own
`check_batch` on it; the driver adds up the slices' checks and, per monitored column, the counts the drift tests
need: category counts (categories read as the model reads them), and for numbers the count of distinct values
(up to 6), their counts while there are few, then either a histogram over the batch's range (a large reference) or
the batch's counts below and at each of the reference's distinct values (a small one). From these, the tests
Evidently's DataDriftPreset picks by default are computed over the whole batch:

- reference of more than 1,000 rows: a numeric column with more than 5 distinct values gets the normed Wasserstein
  distance (threshold 0.1), the reference's own values against the batch's histogram (bin centres weighted by
  counts: off by at most half a bin width over the reference's standard deviation, 0.003 with 1,000 bins over 6
  standard deviations); a categorical column, or a numeric one with at most 5 distinct values, the Jensen-Shannon
  distance of the value shares (threshold 0.1), exact.
- reference of 1,000 rows or fewer: a numeric column with more than 5 distinct values gets the two-sample
  Kolmogorov-Smirnov test, exact: both empirical distribution functions are steps, so their largest gap is at the
  reference's values or just below them, where the batch's counts below and at each value give it; the p-value is
  then scipy's for that statistic and the two sizes. A categorical column, or a numeric one with at most 5 values,
  gets the chi-square test of the batch's value counts against the reference's shares (more than 2 values) or the
  two-proportion z-test (2 values or fewer), both exact from counts; p-values at Evidently's threshold 0.05.

The Evidently report itself is rendered on a seeded sample of the batch; only a column the counts could not judge
falls back to the sample's verdict, and its method says so."""

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
KOLMOGOROV_SMIRNOV = "K-S p_value"
CHI_SQUARE = "chi-square p_value"
Z_TEST = "Z-test p_value"
P_VALUE_THRESHOLD = 0.05  # Evidently's default for the p-value tests: drift below it
BINARY = 2  # a column with at most this many values gets the z-test instead of chi-square
SCIPY_EXACT_KS = 10_000  # scipy's ks_2samp computes the exact p-value up to this many rows in either sample
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
class SecondPass:
    """What the second pass over the batch counts per numeric column with many values: a histogram on `edges`
    (a large reference), or the rows below and at each of the reference's distinct values `points` (a small one);
    and, once summed over the slices, those counts."""

    edges: dict[str, np.ndarray] = field(default_factory=dict)
    points: dict[str, np.ndarray] = field(default_factory=dict)
    histograms: dict[str, list[int]] = field(default_factory=dict)
    below: dict[str, list[int]] = field(default_factory=dict)
    at_or_below: dict[str, list[int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.edges or self.points)

    def count(self, prepared: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
        """One slice's counts (the slice typed by `check_batch`)."""
        counts: dict[str, dict[str, list[int]]] = {"histograms": {}, "below": {}, "at_or_below": {}}
        for column, bins in self.edges.items():
            if column in prepared.columns:
                numbers = prepared[column].dropna().to_numpy(dtype=float)
                counts["histograms"][column] = np.histogram(numbers, bins)[0].tolist()
        for column, points in self.points.items():
            if column in prepared.columns:
                numbers = np.sort(prepared[column].dropna().to_numpy(dtype=float))
                counts["below"][column] = np.searchsorted(numbers, points, side="left").tolist()
                counts["at_or_below"][column] = np.searchsorted(numbers, points, side="right").tolist()
        return counts

    def add(self, part: dict[str, dict[str, list[int]]]) -> None:
        """Add one slice's counts to the sums."""
        for kind in ("histograms", "below", "at_or_below"):
            sums: dict[str, list[int]] = getattr(self, kind)
            for column, counts in part[kind].items():
                total = sums.get(column)
                sums[column] = counts if total is None else [a + b for a, b in zip(total, counts, strict=True)]

    def as_dict(self) -> dict[str, Any]:
        """Plain lists, for a ZenML artifact."""
        return {
            "edges": {c: e.tolist() for c, e in self.edges.items()},
            "points": {c: p.tolist() for c, p in self.points.items()},
            "histograms": self.histograms,
            "below": self.below,
            "at_or_below": self.at_or_below,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SecondPass:
        return cls(
            edges={c: np.asarray(e, dtype=float) for c, e in data["edges"].items()},
            points={c: np.asarray(p, dtype=float) for c, p in data["points"].items()},
            histograms=data["histograms"],
            below=data["below"],
            at_or_below=data["at_or_below"],
        )


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
    table: pd.DataFrame, schema: FeatureSchema, reference: pd.DataFrame, second: SecondPass | None
) -> dict[str, Any]:
    """One slice's check and column counts (pass 1), or its counts for the `second` pass."""
    prepared, check = check_batch(table, schema, reference)
    columns = [c for c in monitored_columns(schema) if c in prepared.columns]
    if second is not None:
        return second.count(prepared)
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


def second_pass(
    columns: dict[str, ColumnCounts], schema: FeatureSchema, reference: pd.DataFrame, bins: int
) -> SecondPass:
    """For the numeric columns that take many values: equal-width bins over the batch's range when the reference
    is large (Wasserstein), the reference's distinct values when it is small (Kolmogorov-Smirnov)."""
    plan = SecondPass()
    for column, counts in columns.items():
        if column not in schema.numeric_features or not counts.non_null or column not in reference.columns:
            continue
        ref = reference[column].dropna()
        if _few_values(ref, counts) or ref.empty:
            continue
        if len(ref) > LARGE_REFERENCE:
            low, high = counts.low, counts.high
            plan.edges[column] = np.linspace(low, high if high > low else low + 1.0, bins + 1)
        else:
            plan.points[column] = np.unique(ref.to_numpy(dtype=float))
    return plan


def _wasserstein_normed(reference: np.ndarray, edges: np.ndarray, counts: list[int]) -> float:
    from scipy.stats import wasserstein_distance

    centres = (edges[:-1] + edges[1:]) / 2
    weights = np.asarray(counts, dtype=float)
    keep = weights > 0
    norm = max(float(np.std(reference)), 0.001)
    return float(wasserstein_distance(reference, centres[keep], None, weights[keep]) / norm)


def _kolmogorov_smirnov(
    reference: np.ndarray, points: np.ndarray, below: list[int], at_or_below: list[int], size: int
) -> float:
    """The p-value of scipy's two-sample Kolmogorov-Smirnov test (as Evidently calls it: two-sided, method auto)
    between the reference and a batch of `size` values known by its counts below and at each of the reference's
    distinct `points` (sorted).

    Both empirical distribution functions are right-continuous steps; between two reference values the
    reference's is flat while the batch's rises, so the largest gap is at a reference value or just below the next
    one, where the batch's function is `at_or_below / size` and `below / size`: the statistic is exact. scipy's
    p-value depends only on it and the two sizes: Smirnov's asymptotic distribution once either sample has more
    than 10,000 values; up to that, scipy's exact computation itself, run on a batch with the same counts."""
    from scipy.stats import distributions, ks_2samp

    n1 = len(reference)
    le, lt = np.asarray(at_or_below, dtype=np.int64), np.asarray(below, dtype=np.int64)
    if max(n1, size) <= SCIPY_EXACT_KS:
        previous = np.concatenate([[0], le[:-1]])
        inside = np.nextafter(points, -np.inf)  # a value above the previous point (if any fits, the count is 0)
        values = np.concatenate([inside, points, [np.nextafter(points[-1], np.inf)]])
        repeats = np.concatenate([lt - previous, le - lt, [size - le[-1]]])
        return float(ks_2samp(reference, np.repeat(values, repeats)).pvalue)
    ref_at = np.searchsorted(np.sort(reference), points, side="right") / n1
    ref_before = np.concatenate([[0.0], ref_at[:-1]])
    gaps = np.concatenate([ref_at - le / size, ref_before - lt / size])
    largest, smallest = float(gaps.max()), float(np.clip(-gaps.min(), 0, 1))
    statistic = smallest if smallest > largest else largest
    m, n = sorted([float(n1), float(size)], reverse=True)
    return float(np.clip(distributions.kstwo.sf(statistic, np.round(m * n / (m + n))), 0, 1))


def _value_counts_test(reference: pd.Series, current: dict[Any, int]) -> tuple[float, str]:
    """Evidently's test of the value counts for a small reference (missing values left out, as it does): the
    chi-square test of the batch's counts against the reference's shares for more than 2 values, else the
    two-proportion z-test of the share of values other than the first (sorted). The p-value and the method."""
    from scipy.stats import chisquare, norm

    ref_counts = reference.value_counts()
    keys = list(dict.fromkeys([*ref_counts.index, *(k for k, v in current.items() if v)]))
    ref = np.array([ref_counts.get(k, 0) for k in keys], dtype=float)
    cur = np.array([current.get(k, 0) for k in keys], dtype=float)
    n1, n2 = ref.sum(), cur.sum()
    if len(keys) > BINARY:
        return float(chisquare(cur, ref * (n2 / n1))[1]), CHI_SQUARE
    if len(keys) == 1:
        return 1.0, Z_TEST
    first = keys.index(sorted(keys)[0])
    p1, p2 = (n1 - ref[first]) / n1, (n2 - cur[first]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z)))), Z_TEST


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
    second: SecondPass,
    rows: int,
    min_rows: int,
    sample: DriftSummary,
    sample_rows: int,
) -> DriftSummary:
    """The drift summary over the whole batch: the test Evidently's default picks for each column, computed from
    the counts; the sample report's verdict only for a column the counts could not judge (its method says so)."""
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
        drift = _column_drift(reference, schema, column, columns[column], second)
        if drift is not None:
            judged[column] = drift
        elif column in sample.columns:
            on_sample = sample.columns[column]
            judged[column] = ColumnDrift(
                score=on_sample.score, method=f"{on_sample.method} (sample of {sample_rows})", drifted=on_sample.drifted
            )
    return DriftSummary.of(judged)


def _column_drift(
    reference: pd.DataFrame, schema: FeatureSchema, column: str, counts: ColumnCounts, second: SecondPass
) -> ColumnDrift | None:
    """One column's drift test from the batch's counts, or None when they cannot give it."""
    if column in schema.categorical_features:  # missing is a category of its own, as the report reads them
        values = category_strings(reference[column])
        return _shares_drift(values, counts.values or {}) if len(values) else None
    ref = reference[column].dropna()
    if ref.empty:
        return None
    if counts.values is not None and _few_values(ref, counts):  # compared by their value shares
        current = {float(k): v for k, v in counts.values.items()}
        if len(ref) > LARGE_REFERENCE:  # as text, as Jensen-Shannon compares them
            return _shares_drift(ref.map(lambda v: repr(float(v))), {repr(k): v for k, v in current.items()})
        return _shares_drift(pd.Series(ref.to_numpy(dtype=float)), current)
    numbers = ref.to_numpy(dtype=float)
    if len(ref) > LARGE_REFERENCE and column in second.histograms:
        score = _wasserstein_normed(numbers, second.edges[column], second.histograms[column])
        return ColumnDrift(score=score, method=WASSERSTEIN, drifted=score >= DRIFT_THRESHOLD)
    if len(ref) <= LARGE_REFERENCE and column in second.at_or_below:
        score = _kolmogorov_smirnov(
            numbers, second.points[column], second.below[column], second.at_or_below[column], counts.non_null
        )
        return ColumnDrift(score=score, method=KOLMOGOROV_SMIRNOV, drifted=score <= P_VALUE_THRESHOLD)
    return None


def _shares_drift(reference: pd.Series, current: dict[Any, int]) -> ColumnDrift:
    """Jensen-Shannon distance for a large reference; chi-square or z-test for a small one."""
    if len(reference) > LARGE_REFERENCE:
        score = _jensen_shannon(reference, current)
        return ColumnDrift(score=score, method=JENSEN_SHANNON, drifted=score >= DRIFT_THRESHOLD)
    score, method = _value_counts_test(reference, current)
    return ColumnDrift(score=score, method=method, drifted=score < P_VALUE_THRESHOLD)


def statistics_on_spark(
    spark: SparkSession, path: str, schema: FeatureSchema, reference: pd.DataFrame, bins: int
) -> tuple[BatchCheck, dict[str, ColumnCounts], SecondPass, DataFrame, str, str]:
    """Two passes over the batch on the cluster: checks and column counts, then the numeric columns' histograms
    over the batch's range or counts at the reference's values. Only these sums come back to the driver."""
    from lifecycle.spark_engine import PATH, START, _as_read, read_input

    frame, kind, header = read_input(spark, path, schema)
    shipped = spark.sparkContext.broadcast(reference)

    def run(second: SecondPass | None) -> list[dict[str, Any]]:
        def task(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for part in frames:
                table = _as_read(part.drop(columns=[PATH, START]), kind, header, schema)
                yield pd.DataFrame({"counts": [json.dumps(slice_counts(table, schema, shipped.value, second))]})

        return [json.loads(row["counts"]) for row in frame.mapInPandas(task, "counts string").collect()]

    slices = run(None)
    check = merge_checks([s["check"] for s in slices])
    columns = merge_counts(slices, schema)
    second = second_pass(columns, schema, reference, bins)
    if second:
        for part in run(second):
            second.add(part)
    shipped.unpersist()
    return check, columns, second, frame, kind, header


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


def batch_sample(
    spark: SparkSession, path: str, schema: FeatureSchema, size: int, seed: int
) -> tuple[pd.DataFrame, int]:
    """What a retraining takes from a batch too large for one process: about `size` of its rows drawn with `seed`
    (the same rows every time for the same batch), read as `read_table`, and the batch's row count."""
    from lifecycle.spark_engine import read_input

    frame, kind, header = read_input(spark, path, schema)
    rows = frame.count()
    return seeded_sample(spark, frame, kind, header, schema, rows, size, seed), rows

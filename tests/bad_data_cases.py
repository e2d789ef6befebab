"""Shared by the bad data tests (tests/test_bad_data_tables.py, tests/test_bad_data_files.py,
tests/test_bad_data_training.py): the bike and churn tables they break, the derandomized hypothesis settings, the
count of generated cases each property tried, and the checks that an error is clear."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest
from conftest import BIKE_DATA, DEMO_CONFIG, PROJECT_ROOT, make_churn_table, note
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from lifecycle.config import DatasetConfig, load_config
from lifecycle.data import as_categories
from lifecycle.errors import LifecycleError
from lifecycle.validation import MISSING_MARKERS

T = TypeVar("T")
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


@contextlib.contextmanager
def cases_reported(test_file: str) -> Iterator[None]:
    """Notes how many generated cases each property of `test_file` tried (and the total) once its tests are done."""
    before = CASES.copy()
    yield
    counts = CASES - before
    lines = [f"  {name}: {count}" for name, count in counts.items()]
    where = Path(test_file).resolve().relative_to(PROJECT_ROOT)
    note("\n".join([f"hypothesis cases tried ({where}):", *lines, f"  total: {sum(counts.values())}"]))


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


@pytest.fixture(scope="module", autouse=True)
def cases_tried(request):
    """Reports how many generated cases each property of the test file tried (and the total) once it is done."""
    with cases_reported(request.module.__file__):
        yield


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-data")

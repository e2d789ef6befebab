"""The model: one sklearn Pipeline holding preprocessing and estimator, so every consumer transforms alike."""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from threadpoolctl import ThreadpoolController

from lifecycle.config import TrainingConfig
from lifecycle.errors import ConfigError
from lifecycle.validation import FeatureSchema, by_unique, canonical_category, category_strings

# family -> (regressor, classifier, needs scaled inputs)
ESTIMATORS: dict[str, tuple[type[BaseEstimator], type[BaseEstimator], bool]] = {
    "hist_gradient_boosting": (HistGradientBoostingRegressor, HistGradientBoostingClassifier, False),
    "random_forest": (RandomForestRegressor, RandomForestClassifier, False),
    "decision_tree": (DecisionTreeRegressor, DecisionTreeClassifier, False),
    "linear": (Ridge, LogisticRegression, True),
}


class CalendarFeatures(TransformerMixin, BaseEstimator):
    """Time columns as numbers a model can use: year, month, weekday, hour — those that vary in training.

    Parsing happens inside the model, so training, batch inference and every server derive them alike.
    """

    PARTS = ("year", "month", "weekday", "hour")

    def __init__(self, formats: dict[str, str] | None = None):
        self.formats = formats

    def _parts(self, frame: pd.DataFrame) -> dict[str, pd.Series]:
        parts: dict[str, pd.Series] = {}
        for column in frame.columns:
            fmt = (self.formats or {}).get(column)
            stamps = pd.to_datetime(by_unique(frame[column], partial(pd.to_datetime, format=fmt, errors="coerce")))
            parts[f"{column}_year"] = stamps.dt.year
            parts[f"{column}_month"] = stamps.dt.month
            parts[f"{column}_weekday"] = stamps.dt.weekday
            parts[f"{column}_hour"] = stamps.dt.hour
        return parts

    def fit(self, frame: pd.DataFrame, y: Any = None) -> CalendarFeatures:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.kept_ = [name for name, values in self._parts(frame).items() if values.nunique() > 1]
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        parts = self._parts(frame)
        return (
            np.column_stack([parts[name].to_numpy(dtype=float) for name in self.kept_])
            if self.kept_
            else (np.empty((len(frame), 0)))
        )

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.kept_, dtype=object)


# Up to this many rows, `CompactColumnTransformer` computes the features with numpy from the fitted transformers,
# skipping scikit-learn's per-call validation and pandas indexing (most of a one-row prediction's cost).
FAST_ROWS = 64


def _imputed(values: np.ndarray, imputer: SimpleImputer) -> np.ndarray:
    statistics = imputer.statistics_
    if not imputer.keep_empty_features:  # a column with no value at fit time is dropped, as sklearn does
        kept = ~np.isnan(statistics)
        values, statistics = values[:, kept], statistics[kept]
    missing = np.isnan(values)
    if missing.any():
        values = np.where(missing, statistics, values)
    return values


def _parsed_parts(values: np.ndarray, fmt: str | None) -> dict[str, np.ndarray]:
    """Year, month, weekday and hour of each value, parsed together as `CalendarFeatures` parses a column."""
    stamps = pd.DatetimeIndex(pd.to_datetime(values, format=fmt, errors="coerce"))
    return {part: np.asarray(getattr(stamps, part), dtype=float) for part in CalendarFeatures.PARTS}


@lru_cache(maxsize=8192, typed=True)
def _parts_of_one(value: Any, fmt: str | None) -> dict[str, float]:
    """`_parsed_parts` of a column holding only this value (pandas infers a missing format from the column's values,
    so only a single-valued column can be answered from one value). Cached: parsing is most of a one-row request's
    preprocessing, and served requests repeat their dates and hours."""
    return {part: float(found[0]) for part, found in _parsed_parts(np.array([value], dtype=object), fmt).items()}


def _single_value(column: np.ndarray) -> Any | None:
    """The column's one value when every cell holds it and it can key a cache; else None."""
    first = column[0]
    try:
        hash(first)
        same = all(value == first for value in column[1:])
    except (TypeError, ValueError):
        return None
    return first if same and not pd.isna(first) else None  # NaN never equals itself, so it cannot key a cache


def _calendar(values: np.ndarray, columns: list[str], calendar: CalendarFeatures) -> np.ndarray:
    """`CalendarFeatures.transform` for a few rows: each column parsed once, as one array (from the cache when every
    row holds the same value, as a one-row request does)."""
    parts: dict[str, np.ndarray] = {}
    kept = set(calendar.kept_)
    for index, column in enumerate(columns):
        wanted = [part for part in CalendarFeatures.PARTS if f"{column}_{part}" in kept]
        if not wanted:
            continue
        fmt = (calendar.formats or {}).get(column)
        single = _single_value(values[:, index])
        if single is not None:
            one = _parts_of_one(single, fmt)
            found = {part: np.full(len(values), one[part]) for part in wanted}
        else:
            found = _parsed_parts(values[:, index], fmt)
        for part in wanted:
            parts[f"{column}_{part}"] = found[part]
    if not calendar.kept_:
        return np.empty((len(values), 0))
    return np.column_stack([np.asarray(parts[name], dtype=float) for name in calendar.kept_])


def _category_strings(values: np.ndarray) -> np.ndarray:
    """`as_category_strings` on an object array."""
    out = np.empty(values.shape, dtype=object)
    for index, value in np.ndenumerate(values):
        out[index] = canonical_category(value)
    return out


def _scaled(values: np.ndarray, scaler: StandardScaler) -> np.ndarray:
    if scaler.with_mean:
        values = values - scaler.mean_
    if scaler.with_std:
        values = values / scaler.scale_
    return values


def _one_hot(values: np.ndarray, encoder: OneHotEncoder) -> np.ndarray:
    """One-hot rows as the fitted encoder writes them: its categories in order, infrequent ones (and unknown
    values, with `infrequent_if_exist`) in the last column of their feature, unknown ones all zero otherwise."""
    blocks = []
    for index, categories in enumerate(encoder.categories_):
        mappings = getattr(encoder, "_default_to_infrequent_mappings", None) if encoder._infrequent_enabled else None
        mapping = mappings[index] if mappings else None
        width = len(categories) if mapping is None else int(mapping.max()) + 1
        block = np.zeros((len(values), width))
        positions = {category: position for position, category in enumerate(categories)}
        for row, value in enumerate(values[:, index]):
            position = positions.get(value)
            if position is not None:
                block[row, position if mapping is None else mapping[position]] = 1.0
            elif mapping is not None:
                block[row, width - 1] = 1.0
        blocks.append(block)
    return np.hstack(blocks) if blocks else np.empty((len(values), 0))


def _fast_step(step: Any) -> bool:
    """Whether `_compact_features` reproduces this fitted step exactly (else the whole call goes to sklearn)."""
    if isinstance(step, CalendarFeatures | StandardScaler):
        return True
    if isinstance(step, SimpleImputer):
        return not step.add_indicator and isinstance(step.missing_values, float) and np.isnan(step.missing_values)
    if isinstance(step, FunctionTransformer):
        return step.func is as_category_strings
    if isinstance(step, OneHotEncoder):
        return (
            step.drop_idx_ is None
            and not step.sparse_output
            and step.handle_unknown in ("infrequent_if_exist", "ignore")
            and step.dtype in (np.float64, float)
            and all(c.dtype == object for c in step.categories_)
        )
    return False


class CompactColumnTransformer(ColumnTransformer):
    """A ColumnTransformer that, for a few rows, computes the same features with numpy from its fitted
    transformers (imputers, scalers, calendar features, one-hot encoders) instead of going through scikit-learn's
    per-call machinery; larger inputs, and any transformer it does not know, go to ColumnTransformer itself.
    The features are identical either way (tests compare both on whole test sets)."""

    def transform(self, X: Any, **params: Any) -> Any:
        compact = None
        if isinstance(X, pd.DataFrame) and len(X) <= FAST_ROWS and not params and self._compact_usable():
            compact = self._try_compact(X)
        return compact if compact is not None else super().transform(X, **params)

    def _try_compact(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The compact features, or None for an input the compact path does not expect: scikit-learn's path then
        decides (and names the problem, if there is one)."""
        try:
            return self._compact_features(frame)
        except Exception:
            return None

    def _compact_usable(self) -> bool:
        usable = getattr(self, "_compact_checked", None)
        if usable is None:
            usable = self.remainder == "drop" and not getattr(self, "sparse_output_", False)
            for name, transformer, _ in self.transformers_:
                if name == "remainder" or transformer == "drop":
                    continue
                steps = transformer.steps if isinstance(transformer, Pipeline) else [(name, transformer)]
                usable = usable and all(_fast_step(step) for _, step in steps)
            self._compact_checked = usable
        return usable

    def _compact_features(self, frame: pd.DataFrame) -> np.ndarray:
        table = frame.to_numpy(dtype=object)  # one conversion; each transformer takes its columns from it
        position = {column: index for index, column in enumerate(frame.columns)}
        blocks = []
        for name, transformer, columns in self.transformers_:
            if name == "remainder" or transformer == "drop":
                continue
            steps = transformer.steps if isinstance(transformer, Pipeline) else [(name, transformer)]
            values: Any = table[:, [position[column] for column in columns]]
            for _, step in steps:
                if isinstance(step, CalendarFeatures):
                    values = _calendar(values, list(columns), step)
                elif isinstance(step, FunctionTransformer):  # as_category_strings (checked by _fast_step)
                    values = _category_strings(values)
                elif isinstance(step, SimpleImputer):
                    values = _imputed(np.asarray(values, dtype=float), step)
                elif isinstance(step, StandardScaler):
                    values = _scaled(values, step)
                else:
                    values = _one_hot(values, step)
            blocks.append(np.asarray(values, dtype=float))
        return np.hstack(blocks) if blocks else np.empty((len(frame), 0))


_THREAD_POOLS: list[ThreadpoolController] = []


def one_thread() -> Any:
    """A context in which OpenMP code (HistGradientBoosting's predict) runs on the calling thread only. For a few
    rows, starting the pool's threads for each of its trees costs more than the trees: a one-row prediction of the
    bike model takes about a third of the time (benchmarks/serving.py), and a server answering requests on several
    threads no longer oversubscribes the CPUs. Each row's sum over the trees is the same either way."""
    if not _THREAD_POOLS:  # found once, after scikit-learn has loaded its OpenMP runtime
        _THREAD_POOLS.append(ThreadpoolController())
    return _THREAD_POOLS[0].limit(limits=1, user_api="openmp")


class CompactPipeline(Pipeline):
    """The model's Pipeline (preprocessing, then the estimator). For a few rows, `predict` and `predict_proba` call
    the two steps directly (scikit-learn's Pipeline spends about as long on its own checks as the compact features
    take), with the estimator on one thread (`one_thread`). Same calls, same results; anything else is Pipeline's."""

    def _direct(self, X: Any, params: dict[str, Any]) -> bool:
        return not params and isinstance(X, pd.DataFrame) and len(X) <= FAST_ROWS and len(self.steps) == 2

    def predict(self, X: Any, **params: Any) -> Any:
        if self._direct(X, params):
            features = self.steps[0][1].transform(X)
            with one_thread():
                return self.steps[-1][1].predict(features)
        return super().predict(X, **params)

    def predict_proba(self, X: Any, **params: Any) -> Any:
        if self._direct(X, params):
            features = self.steps[0][1].transform(X)
            with one_thread():
                return self.steps[-1][1].predict_proba(features)
        return super().predict_proba(X, **params)


def as_category_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories in their canonical text (`canonical_category`): one-hot encoding sees the same category
    for the same value whichever path it came by (training file, batch file, JSON request)."""
    return pd.DataFrame({column: category_strings(frame[column]) for column in frame.columns}, index=frame.index)


def make_estimator(name: str, task: str, params: dict[str, Any], seed: int) -> tuple[BaseEstimator, bool]:
    if name not in ESTIMATORS:
        raise ConfigError(
            f"unknown estimator `{name}` in training.estimator.name; choose one of: {', '.join(ESTIMATORS)}."
        )
    regressor, classifier, needs_scaling = ESTIMATORS[name]
    estimator_class = regressor if task == "regression" else classifier
    try:
        estimator = estimator_class(**params)
    except TypeError as exc:
        raise ConfigError(f"training.estimator.params do not fit {estimator_class.__name__}: {exc}") from exc
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=seed)
    return estimator, needs_scaling


def build_model(schema: FeatureSchema, training: TrainingConfig) -> Pipeline:
    estimator, needs_scaling = make_estimator(
        training.estimator.name, schema.task, training.estimator.params, training.seed
    )
    prep = training.preprocessing
    scale = prep.scale_numeric == "always" or (prep.scale_numeric == "auto" and needs_scaling)
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy=prep.numeric_imputation))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps = [
        ("as_strings", FunctionTransformer(as_category_strings, feature_names_out="one-to-one")),
        (
            "one_hot",
            OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                max_categories=prep.max_categories,
                sparse_output=False,
            ),
        ),
    ]
    transformers = []
    if schema.time_columns:
        time_steps: list[tuple[str, Any]] = [
            ("calendar", CalendarFeatures(schema.time_formats)),
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ]
        if scale:
            time_steps.append(("scale", StandardScaler()))
        transformers.append(("time", Pipeline(time_steps), schema.time_columns))
    if schema.numeric_features:
        transformers.append(("numeric", Pipeline(numeric_steps), schema.numeric_features))
    if schema.categorical_features:
        transformers.append(("categorical", Pipeline(categorical_steps), schema.categorical_features))
    preprocess = CompactColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return CompactPipeline([("preprocess", preprocess), ("estimator", estimator)])


def fit_model(train: pd.DataFrame, schema: FeatureSchema, training: TrainingConfig) -> tuple[Pipeline, dict[str, Any]]:
    """Fit the pipeline (grid-searched when a grid is configured); returns it with the chosen parameters."""
    model = build_model(schema, training)
    features, target = train[schema.model_inputs], train[schema.target]
    grid = training.estimator.param_grid
    if not grid:
        model.fit(features, target)
        return model, dict(training.estimator.params)
    folds_class = StratifiedKFold if schema.task == "classification" else KFold
    folds = folds_class(n_splits=training.estimator.cv_folds, shuffle=True, random_state=training.seed)
    search = GridSearchCV(
        model,
        {f"estimator__{name}": values for name, values in grid.items()},
        cv=folds,
        scoring="neg_root_mean_squared_error" if schema.task == "regression" else "f1_macro",
        error_score="raise",
    )
    try:
        search.fit(features, target)
    except ValueError as exc:
        raise ConfigError(f"training.estimator.param_grid could not be searched: {exc}") from exc
    return search.best_estimator_, chosen_params(search.best_estimator_, training)


def chosen_params(model: Pipeline, training: TrainingConfig) -> dict[str, Any]:
    """The fitted estimator's values of the parameters the config sets or searches (what a reader wants to see)."""
    names = [*training.estimator.params, *training.estimator.param_grid]
    actual = model.named_steps["estimator"].get_params()
    return {name: actual[name] for name in dict.fromkeys(names) if name in actual}


def predict_scores(model: Pipeline, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions, plus positive-class probabilities for a binary classifier (else None)."""
    predictions = model.predict(table)
    probabilities = None
    if hasattr(model, "predict_proba") and len(getattr(model, "classes_", [])) == 2:
        probabilities = model.predict_proba(table)[:, 1]
    return predictions, probabilities


def calendar_parts(model: Pipeline) -> dict[str, list[str]]:
    """The calendar features a fitted model derives from each time column: only those that varied in training
    (daily dates give no `hour`)."""
    preprocess = model.named_steps.get("preprocess")
    time = getattr(preprocess, "named_transformers_", {}).get("time")
    calendar = time.named_steps.get("calendar") if isinstance(time, Pipeline) else None
    kept = list(getattr(calendar, "kept_", []))
    columns = [str(column) for column in getattr(calendar, "feature_names_in_", [])]
    return {column: [part for part in CalendarFeatures.PARTS if f"{column}_{part}" in kept] for column in columns}


def column_treatments(
    schema: FeatureSchema, training: TrainingConfig, calendar: dict[str, list[str]] | None = None
) -> dict[str, str]:
    """What `build_model` does with each input column, in words (for the model card). `calendar`: the features
    the fitted model derives from each time column (`calendar_parts`); without it, the parts it may derive."""
    prep = training.preprocessing
    needs_scaling = ESTIMATORS.get(training.estimator.name, (None, None, False))[2]
    scaled = prep.scale_numeric == "always" or (prep.scale_numeric == "auto" and needs_scaling)
    then_scaled = ", then standardized" if scaled else ""
    treatments = {}
    for column in schema.time_columns:
        parts = CalendarFeatures.PARTS if calendar is None else calendar.get(column, [])
        features = f"features {', '.join(parts)}{then_scaled}" if parts else "no feature (none of its parts varied)"
        treatments[column] = f"time: orders the rows for the split; {features}"
    numeric = f"numeric: missing values filled with the {prep.numeric_imputation}{then_scaled}"
    treatments.update({column: numeric for column in schema.numeric_features})
    categorical = f"categorical: one-hot, at most {prep.max_categories} categories (the rarest pooled), unseen ignored"
    treatments.update({column: categorical for column in schema.categorical_features})
    return treatments

"""The model: one sklearn Pipeline holding preprocessing and estimator, so every consumer transforms alike."""

from __future__ import annotations

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

from lifecycle.config import TrainingConfig
from lifecycle.errors import ConfigError
from lifecycle.validation import FeatureSchema, by_unique

# family -> (regressor, classifier, needs scaled inputs)
ESTIMATORS: dict[str, tuple[type[BaseEstimator], type[BaseEstimator], bool]] = {
    "hist_gradient_boosting": (HistGradientBoostingRegressor, HistGradientBoostingClassifier, False),
    "random_forest": (RandomForestRegressor, RandomForestClassifier, False),
    "decision_tree": (DecisionTreeRegressor, DecisionTreeClassifier, False),
    "linear": (Ridge, LogisticRegression, True),
}
MISSING_CATEGORY = "__missing__"


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
            stamps = pd.to_datetime(
                by_unique(frame[column], lambda s, f=fmt: pd.to_datetime(s, format=f, errors="coerce"))
            )
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


def as_category_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as strings (mixed ints/strings/bools cannot be one-hot encoded), gaps as one category."""
    return frame.astype(object).where(frame.notna(), MISSING_CATEGORY).astype(str)


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
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


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

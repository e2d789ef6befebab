import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_CONFIG, make_churn_table

from lifecycle.config import DatasetConfig, EvaluationConfig, SplitConfig, TrainingConfig
from lifecycle.errors import ConfigError, DataError
from lifecycle.metrics import evaluate_model, is_better, relative_gap
from lifecycle.modeling import CalendarFeatures, fit_model
from lifecycle.promotion import decide_promotion
from lifecycle.splitting import split_table
from lifecycle.validation import validate_table


@pytest.fixture(scope="module")
def churn():
    table = make_churn_table()
    config = DatasetConfig(path="churn.csv", target="churned", task="classification", segment_columns=["plan"])
    clean, schema, _ = validate_table(table, config)
    train, test = split_table(clean, schema, SplitConfig(), seed=1)
    return train, test, schema


def test_time_split_tests_on_the_newest_rows():
    hours = pd.date_range("2024-01-01", periods=100, freq="h")
    table = pd.DataFrame({"day": hours.strftime("%Y-%m-%d"), "hour": hours.strftime("%I%p"), "x": range(100)})
    table = table.assign(y=table["x"] * 2.0).sample(frac=1, random_state=3)  # shuffled, as the bike file is
    config = DatasetConfig(
        path="t.csv",
        target="y",
        task="regression",
        time_columns=[{"column": "day"}, {"column": "hour", "format": "%I%p"}],
    )
    clean, schema, _ = validate_table(table, config)
    train, test = split_table(clean, schema, SplitConfig(test_fraction=0.2), seed=0)
    assert sorted(test["x"]) == list(range(80, 100))
    assert train["x"].tolist() == list(range(80))


def test_random_split_is_stratified_and_seeded(churn):
    train, test, schema = churn
    share = lambda frame: (frame["churned"] == "yes").mean()  # noqa: E731
    assert abs(share(train) - share(test)) < 0.02
    clean = pd.concat([train, test], ignore_index=True)
    first = split_table(clean, schema, SplitConfig(), seed=5)[1]
    again = split_table(clean, schema, SplitConfig(), seed=5)[1]
    pd.testing.assert_frame_equal(first, again)


def test_too_few_rows_is_an_actionable_error(churn):
    _, test, schema = churn
    with pytest.raises(DataError, match="min_train_rows"):
        split_table(test.head(15), schema, SplitConfig(), seed=0)


def test_model_handles_missing_values_and_unseen_categories(churn):
    train, test, schema = churn
    model, _ = fit_model(train, schema, TrainingConfig())
    odd = test.head(5).copy()
    odd.loc[odd.index[0], "plan"] = "platinum"  # never seen in training
    odd.loc[odd.index[1], ["region", "tenure_months"]] = [None, np.nan]
    assert set(model.predict(odd)) <= {"yes", "no"}


def test_same_seed_same_model(churn):
    train, test, schema = churn
    config = TrainingConfig(seed=11, estimator={"name": "random_forest", "params": {"n_estimators": 20}})
    first, _ = fit_model(train, schema, config)
    second, _ = fit_model(train, schema, config)
    np.testing.assert_array_equal(first.predict_proba(test), second.predict_proba(test))


def test_grid_search_records_the_chosen_parameters(churn):
    train, _, schema = churn
    config = TrainingConfig(
        estimator={"name": "decision_tree", "params": {"min_samples_leaf": 5}, "param_grid": {"max_depth": [1, 4]}}
    )
    _, chosen = fit_model(train, schema, config)
    assert chosen["min_samples_leaf"] == 5 and chosen["max_depth"] in (1, 4)


def test_unknown_estimator_lists_the_choices(churn):
    train, _, schema = churn
    with pytest.raises(ConfigError, match="hist_gradient_boosting"):
        fit_model(train, schema, TrainingConfig(estimator={"name": "xgboost"}))


def test_calendar_features_keep_only_varying_parts():
    frame = pd.DataFrame({"day": ["2024-01-01", "2024-03-02"], "hr": ["6am", "11pm"]})
    features = CalendarFeatures({"hr": "%I%p"}).fit(frame)
    assert list(features.get_feature_names_out()) == ["day_month", "day_weekday", "hr_hour"]
    np.testing.assert_array_equal(features.transform(frame), [[1, 0, 6], [3, 5, 23]])


def test_evaluation_scores_model_baseline_and_segments(churn):
    train, test, schema = churn
    model, _ = fit_model(train, schema, TrainingConfig())
    report = evaluate_model(model, train, test, schema, EvaluationConfig(min_segment_rows=10))
    assert set(report.metrics) == {"accuracy", "f1_macro", "roc_auc"}
    assert report.primary_metric == "f1_macro"
    assert report.metrics["roc_auc"] > 0.7 and report.baseline_metrics["roc_auc"] == 0.5
    assert report.metrics["f1_macro"] > report.baseline_metrics["f1_macro"]
    assert {s.value for s in report.segments} == {"basic", "pro", "enterprise"}
    assert sum(s.rows for s in report.segments) == len(test)


def test_segment_gap_flags_a_worse_segment():
    assert relative_gap("rmse", 15.0, 10.0) == pytest.approx(0.5)
    assert relative_gap("f1_macro", 0.6, 0.8) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "metric, candidate, reference, margin, better",
    [
        ("rmse", 9.0, 10.0, 0.0, True),
        ("rmse", 10.0, 10.0, 0.0, False),
        ("rmse", 9.5, 10.0, 0.1, False),
        ("f1_macro", 0.81, 0.8, 0.0, True),
        ("f1_macro", 0.8, 0.8, 0.0, False),
        ("r2", 0.5, 0.4, 0.5, False),
    ],
)
def test_is_better(metric, candidate, reference, margin, better):
    assert is_better(metric, candidate, reference, margin) is better


def test_promotion_rules():
    first = decide_promotion("rmse", 50.0, 100.0)
    assert first.promoted and "first production model" in first.reason
    worse_than_baseline = decide_promotion("rmse", 120.0, 100.0)
    assert not worse_than_baseline.promoted and "baseline" in worse_than_baseline.reason
    beats = decide_promotion("rmse", 40.0, 100.0, production_version="3", production_score=50.0)
    assert beats.promoted and "version 3" in beats.reason
    tie = decide_promotion("rmse", 50.0, 100.0, production_version="3", production_score=50.0)
    assert not tie.promoted and "production kept" in tie.reason
    margin = decide_promotion("rmse", 49.0, 100.0, production_version="3", production_score=50.0, min_improvement=0.05)
    assert not margin.promoted and "5.0%" in margin.reason
    incompatible = decide_promotion("rmse", 10.0, 100.0, production_version="3", production_problem="needs `x`")
    assert not incompatible.promoted and "--model-name" in incompatible.reason


# --- the compact feature path of a few rows: the same features, the same predictions --------------------------


def _bike(bike_slice):
    from lifecycle.config import load_config
    from lifecycle.data import read_table

    config = load_config(DEMO_CONFIG)
    dataset = config.dataset.model_copy(update={"path": str(bike_slice)})
    clean, schema, _ = validate_table(read_table(bike_slice), dataset)
    train, test = split_table(clean, schema, config.split, seed=config.training.seed)
    return fit_model(train, schema, config.training)[0], test, schema


def _assert_compact_path_is_exact(model, table: pd.DataFrame) -> None:
    """Every chunk of up to FAST_ROWS rows: the compact path's features are exactly scikit-learn's (and it is the
    path taken: it is called directly, so a fall-back cannot hide a difference), and so are the predictions."""
    from sklearn.compose import ColumnTransformer

    from lifecycle.modeling import FAST_ROWS, CompactColumnTransformer, CompactPipeline

    preprocess, estimator = model.named_steps["preprocess"], model.named_steps["estimator"]
    assert isinstance(model, CompactPipeline)
    assert isinstance(preprocess, CompactColumnTransformer) and preprocess._compact_usable()
    for size in (7, FAST_ROWS):
        for start in range(0, len(table), size):
            chunk = table.iloc[start : start + size]
            compact = preprocess._compact_features(chunk)  # raises if the compact path cannot take it
            reference = ColumnTransformer.transform(preprocess, chunk)
            assert compact.shape == reference.shape and np.array_equal(compact, reference, equal_nan=True), start
    # Row by row (how a server predicts), against the same row through scikit-learn's path: the same features,
    # max difference 0 in the predictions. (Row by row, not against one batch: BLAS may round a batch differently
    # from one row, either path.) Every row up to 200, else 200 spread evenly over the table: the chunks above
    # cover every row's features.
    for index in range(0, len(table), max(1, len(table) // 200)):
        row = table.iloc[index : index + 1]
        reference = ColumnTransformer.transform(preprocess, row)
        assert np.array_equal(preprocess._compact_features(row), reference, equal_nan=True), index
        assert (model.predict(row) == estimator.predict(reference)).all(), index
        if hasattr(estimator, "predict_proba"):
            assert np.array_equal(model.predict_proba(row), estimator.predict_proba(reference)), index


def test_compact_features_equal_sklearns_on_the_bike_test_set(bike_slice):
    model, test, schema = _bike(bike_slice)
    _assert_compact_path_is_exact(model, test[schema.model_inputs])


@pytest.mark.parametrize("estimator", ["hist_gradient_boosting", "linear", "random_forest"])
def test_compact_features_equal_sklearns_on_a_classification_table_with_gaps(churn, estimator):
    train, test, schema = churn
    model, _ = fit_model(train, schema, TrainingConfig(estimator={"name": estimator}, seed=3))
    odd = test[schema.model_inputs].head(20).copy()
    odd.loc[odd.index[:5], "plan"] = "unheard-of"  # unseen categories
    odd.loc[odd.index[5:10], ["region", "plan"]] = None  # missing categories
    odd.loc[odd.index[10:15], ["tenure_months", "monthly_spend"]] = np.nan  # missing numbers
    _assert_compact_path_is_exact(model, pd.concat([test[schema.model_inputs], odd]))

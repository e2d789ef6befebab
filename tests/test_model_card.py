"""A model card explains a classifier: per-class metrics and support, the confusion matrix, the class balance of
train and test; intended use and limitations from the config (or a visible note); shares as percentages; only the
calendar features the model derives; the git commit or how to get one. Built from a real model trained on a daily,
five-class table (no ZenML: the card's content is plain functions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lifecycle.config import DatasetConfig, EvaluationConfig, SplitConfig, TrainingConfig
from lifecycle.metrics import class_breakdown, evaluate_model
from lifecycle.model_card import NOT_FILLED_IN, ModelCard, render_html, render_markdown, share
from lifecycle.modeling import calendar_parts, column_treatments, fit_model
from lifecycle.monitoring import MonitoringPolicy, PerformanceSummary, decide_retraining, versus_test_set
from lifecycle.splitting import split_table
from lifecycle.validation import validate_table

WEATHER = ["sun", "rain", "drizzle", "fog", "snow"]


def weather_table(days: int = 500, seed: int = 3) -> pd.DataFrame:
    """Daily readings and a five-class `weather` label, unbalanced as real weather is (sun and rain common)."""
    rng = np.random.default_rng(seed)
    weather = rng.choice(WEATHER, size=days, p=[0.45, 0.35, 0.08, 0.07, 0.05])
    rain = {"sun": 0.0, "rain": 8.0, "drizzle": 1.5, "fog": 0.2, "snow": 4.0}
    cold = {"sun": 0.0, "rain": 0.0, "drizzle": 0.0, "fog": -2.0, "snow": -12.0}
    return pd.DataFrame(
        {
            "date": pd.date_range("2019-01-01", periods=days, freq="D").strftime("%Y-%m-%d"),
            "precipitation": [rain[w] + rng.gamma(1.0, 1.0) for w in weather],
            "temp_max": [15 + cold[w] + rng.normal(0, 4) for w in weather],
            "wind": rng.gamma(2.0, 1.5, size=days),
            "weather": weather,
        }
    )


@pytest.fixture(scope="module")
def weather_card() -> ModelCard:
    dataset = DatasetConfig(path="weather.csv", target="weather", time_columns=["date"])
    clean, schema, quality = validate_table(weather_table(), dataset)
    training = TrainingConfig(estimator={"name": "random_forest", "params": {"n_estimators": 30}})
    train, test = split_table(clean, schema, SplitConfig(), seed=training.seed)
    model, params = fit_model(train, schema, training)
    evaluation = evaluate_model(model, train, test, schema, EvaluationConfig(bootstrap_resamples=20))
    return ModelCard(
        model_name="weather",
        version="1",
        description="Predicts `weather` from weather.csv.",
        schema=schema,
        data=quality,
        treatments=column_treatments(schema, training, calendar_parts(model)),
        evaluation=evaluation,
        estimator="random_forest",
        estimator_params=params,
        seed=training.seed,
        git_commit="unknown",
        monitoring=[{"at": "2020-06-01", "batch": "june.csv", "rows": 30, "drift_share": 1.0, "retrain": True}],
    )


def test_a_classifier_card_has_per_class_metrics_a_confusion_matrix_and_the_class_balance(weather_card):
    text = render_markdown(weather_card)
    breakdown = weather_card.evaluation.by_class
    assert breakdown is not None and sorted(breakdown.labels) == sorted(WEATHER)
    test_rows = weather_card.evaluation.test_rows
    assert sum(c.support for c in breakdown.classes) == test_rows == sum(map(sum, breakdown.confusion))
    assert "| class | precision | recall | F1 | support (test rows) | share of train | share of test |" in text
    for row in breakdown.classes:
        assert f"| `{row.label}` | " in text
    assert "Confusion matrix on the test rows (rows: the true class; columns: the predicted class)" in text
    assert "| true ↓ predicted → | " + " | ".join(f"`{label}`" for label in breakdown.labels) + " |" in text
    # Why f1_macro sits far below accuracy on unbalanced classes is said, with both figures.
    assert "accuracy " in text and "plain mean of the per-class F1" in text
    # Shares are percentages everywhere on the card (the class balance, the drift share).
    assert f"| {share(breakdown.train_shares['sun'])} | " in text and "%" in share(breakdown.train_shares["sun"])
    assert "| 100% |" in text and "| 1 | june.csv" not in text
    assert "<svg" in render_html(weather_card) and "F1 per class" in render_html(weather_card)


def test_the_breakdown_counts_each_class_and_each_confusion():
    breakdown = class_breakdown(
        pd.Series(["a", "a", "a", "b"]), pd.Series(["a", "b", "b", "c"]), np.array(["a", "a", "b", "a"])
    )
    assert breakdown.labels == ["a", "b", "c"]
    assert breakdown.confusion == [[1, 0, 0], [1, 1, 0], [1, 0, 0]]
    by_label = {c.label: c for c in breakdown.classes}
    assert by_label["a"].precision == pytest.approx(1 / 3) and by_label["a"].recall == 1.0
    assert by_label["b"].support == 2 and by_label["b"].recall == 0.5 and by_label["c"].f1 == 0.0
    assert breakdown.train_shares == {"a": 0.75, "b": 0.25, "c": 0.0}
    assert breakdown.test_shares == {"a": 0.25, "b": 0.5, "c": 0.25}


def test_intended_use_and_limitations_come_from_the_config_or_say_they_are_not_filled_in(weather_card):
    empty = render_markdown(weather_card)
    assert "## Intended use\n\n" + NOT_FILLED_IN.format(key="intended_use") in empty
    assert "## Limitations\n\n" + NOT_FILLED_IN.format(key="limitations") in empty
    filled = weather_card.model_copy(update={"intended_use": "Planning walks.", "limitations": "One city only."})
    text = render_markdown(filled)
    assert "## Intended use\n\nPlanning walks.\n" in text and "## Limitations\n\nOne city only.\n" in text
    assert "Not filled in" not in text


def test_daily_dates_give_no_hour_and_the_first_sentence_is_not_repeated(weather_card):
    text = render_markdown(weather_card)
    assert "time: orders the rows for the split; features year, month, weekday" in text
    assert "date_hour" not in text and "weekday, hour" not in text
    assert text.count("Predicts `weather`") == 1, text[:600]


def test_an_unknown_commit_says_how_to_record_one(weather_card):
    assert "git commit `unknown`" not in render_markdown(weather_card)
    assert "`git init && git add -A && git commit -m 'First version'`" in render_markdown(weather_card)
    committed = weather_card.model_copy(update={"git_commit": "0123abc"})
    assert "Code: git commit `0123abc`." in render_markdown(committed)


def test_a_metric_change_reads_right_for_scores_and_for_errors():
    """A score that rose (f1_macro 0.70 vs 0.38) is better, not "-83% better"; an error that rose is worse."""
    assert versus_test_set(-0.83) == "83% better than on the test set"
    assert versus_test_set(0.35) == "35% worse than on the test set"
    assert versus_test_set(0.001) == "as on the test set"
    from lifecycle.monitoring import BatchCheck, DriftSummary

    calm = DriftSummary(judged=True, share=0.0, drifted_columns=[])
    better = PerformanceSummary(judged=True, metric="f1_macro", degradation=-0.83)
    policy = MonitoringPolicy(degradation_threshold=0.25)
    reasons = decide_retraining(BatchCheck(rows=300), calm, better, policy).reasons[0]
    assert "f1_macro 83% better than on the test set" in reasons and "-83%" not in reasons, reasons

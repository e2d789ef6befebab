"""This project's own model on this project's own data (configs/training.yaml), fast and without ZenML: the file
passes training's checks, a model with the configured estimator trains on a sample of it and is scored on its test
rows beside the naive baseline, and the serving contract answers requests built from the file's own columns as the
model predicts in process. In a project generated from the template, these are what `make test`
runs (with the few tests that read the project's files); the template's full suite stays in the template."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from lifecycle.config import DEFAULT_CONFIG, load_config
from lifecycle.data import read_table
from lifecycle.metrics import evaluate_model
from lifecycle.modeling import fit_model, make_estimator, predict_scores
from lifecycle.splitting import split_table
from lifecycle.validation import validate_table
from serving.contract import answer, json_records, parse_body

# A smoke train: at most this many rows of the file (the newest, for time-ordered data), and at most this many
# boosting iterations or trees (the configured estimator otherwise, without its grid search).
SAMPLE_ROWS = 3000
SMOKE_ROUNDS = {"max_iter": 30, "n_estimators": 30}


@pytest.fixture(scope="module")
def own():
    config = load_config(DEFAULT_CONFIG)
    table = read_table(config.dataset.path, csv_format=config.dataset.csv)
    clean, schema, quality = validate_table(table, config.dataset)
    if len(clean) > SAMPLE_ROWS:
        clean = clean.iloc[-SAMPLE_ROWS:] if schema.time_columns else clean.sample(SAMPLE_ROWS, random_state=0)
    train, test = split_table(clean, schema, config.split, seed=config.training.seed)
    configured = config.training.estimator
    accepted = make_estimator(configured.name, schema.task, configured.params, config.training.seed)[0].get_params()
    params = {**configured.params}
    for name, rounds in SMOKE_ROUNDS.items():
        if isinstance(accepted.get(name), int):
            params[name] = min(accepted[name], rounds)
    estimator = configured.model_copy(update={"param_grid": {}, "params": params})
    training = config.training.model_copy(update={"estimator": estimator})
    model, _ = fit_model(train, schema, training)
    return config, schema, quality, model, train, test


def test_the_data_file_passes_trainings_checks(own):
    config, schema, quality, *_ = own
    assert schema.target == config.dataset.target and schema.model_inputs
    assert quality.rows_out > 0 and quality.rows_out <= quality.rows_in


def test_a_model_trains_on_a_sample_and_is_scored_on_its_test_rows(own):
    config, schema, _, model, train, test = own
    report = evaluate_model(model, train, test, schema, config.evaluation, config.promotion.metric)
    assert report.test_rows == len(test) > 0
    assert all(math.isfinite(value) for value in report.metrics.values()), report.metrics
    assert report.primary_metric in report.baseline_metrics
    if schema.task == "classification":
        assert report.by_class is not None and sum(c.support for c in report.by_class.classes) == len(test)


def test_the_serving_contract_answers_with_the_files_own_columns(own):
    config, schema, _, model, _, test = own
    rows = test.head(5)
    body = json.dumps({"records": json_records(rows, schema)}).encode()
    response = answer(model, schema, parse_body(body), config.model.name, "test")
    expected, _ = predict_scores(model, rows[schema.model_inputs])
    assert response["model_name"] == config.model.name and len(response["predictions"]) == len(rows)
    assert pd.Series(response["predictions"]).astype(str).tolist() == pd.Series(expected).astype(str).tolist()

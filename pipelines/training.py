"""Training pipeline: ingest -> validate -> split -> train -> evaluate -> register -> promote -> model card.

With `training.challengers` (the H2O AutoML leader), the configured estimator and each challenger are trained on the
same rows and `choose_model` hands the better one on; evaluation, the gates and registration see only that one."""

from zenml import pipeline

from lifecycle.config import DatasetConfig, EvaluationConfig, PromotionConfig, SplitConfig, TrainingConfig
from lifecycle.data import file_fingerprint
from lifecycle.names import TRAINING_PIPELINE
from steps.data.ingest import ingest_data
from steps.data.split import split_data
from steps.data.validate import validate_data
from steps.training.automl import train_automl_challenger
from steps.training.card import write_model_card
from steps.training.choose import choose_model
from steps.training.evaluate import evaluate
from steps.training.promote import promote_model
from steps.training.register import register_model
from steps.training.train import train_configured_model, train_model


@pipeline(name=TRAINING_PIPELINE)
def training_pipeline(
    dataset: DatasetConfig,
    split: SplitConfig,
    training: TrainingConfig,
    evaluation: EvaluationConfig,
    promotion: PromotionConfig,
) -> None:
    # Computed when the pipeline is composed: a changed file changes the ingest step's cache key.
    fingerprint = file_fingerprint(dataset.path)
    raw_data = ingest_data(
        path=dataset.path, fingerprint=fingerprint, csv_format=dataset.csv.model_dump(exclude_none=True)
    )
    clean_data, feature_schema, quality = validate_data(raw_data, dataset=dataset)
    train_set, test_set = split_data(clean_data, feature_schema, split=split, seed=training.seed)
    if training.challengers:
        configured, configured_seconds = train_configured_model(train_set, feature_schema, training=training)
        automl, leaderboard, automl_seconds = train_automl_challenger(
            train_set, feature_schema, training=training, primary_metric=promotion.metric
        )
        model, _ = choose_model(
            configured,
            configured_seconds,
            automl,
            automl_seconds,
            leaderboard,
            test_set,
            feature_schema,
            training=training,
            evaluation=evaluation,
            primary_metric=promotion.metric,
        )
    else:
        model = train_model(train_set, feature_schema, training=training)
    report = evaluate(
        model, train_set, test_set, feature_schema, evaluation=evaluation, primary_metric=promotion.metric
    )
    register_model(model, test_set, report, feature_schema, quality, training=training, data_fingerprint=fingerprint)
    decision = promote_model(model, test_set, feature_schema, report, promotion=promotion, after="register_model")
    write_model_card(report, feature_schema, quality, decision, training=training)

"""Names of artifacts and steps, shared by steps, pipelines, run.py and tests; the rule for model names."""

import re

from lifecycle.errors import ConfigError

RAW_DATA = "raw_data"
CLEAN_DATA = "clean_data"
FEATURE_SCHEMA = "feature_schema"
DATA_QUALITY = "data_quality_report"
TRAIN_SET = "train_set"  # also the reference set for drift monitoring
TEST_SET = "test_set"
MODEL = "model"
EVALUATION = "evaluation_report"
PROMOTION = "promotion_decision"
MODEL_CARD = "model_card"
# Model version metadata: the calendar features the model derives from each time column (those that varied).
CALENDAR_FEATURES = "calendar_features"
# The trainers judged side by side when challengers are configured (`training.challengers`).
CONFIGURED_MODEL = "configured_model"
AUTOML_MODEL = "automl_model"
AUTOML_LEADERBOARD = "automl_leaderboard"
TRAINER_COMPARISON = "trainer_comparison"

TRAINING_PIPELINE = "training_pipeline"
PROMOTE_STEP = "promote_model"
EVALUATE_STEP = "evaluate"
VALIDATE_STEP = "validate_data"
SPLIT_STEP = "split_data"
MODEL_CARD_STEP = "write_model_card"

BATCH = "batch"
BATCH_CHECK = "batch_check"
PREDICTIONS = "predictions"
DRIFT_REPORT = "drift_report"
DRIFT_SUMMARY = "drift_summary"
PERFORMANCE = "performance_summary"
MONITORING_SUMMARY = "monitoring_summary"

MONITORING_PIPELINE = "monitoring_pipeline"
DRIFT_STEP = "drift_report"
SUMMARY_STEP = "summarize_monitoring"

INFERENCE_PIPELINE = "inference_service"
DEPLOYMENT_PIPELINE = "deployment_pipeline"
DEPLOY_STEP = "deploy_model"
DEPLOYMENT = "deployment"

BATCH_SCORING_PIPELINE = "batch_scoring_pipeline"
SCORE_STEP = "score_batch"
SCORED = "scored_rows"
SKIPPED = "skipped_rows"

SPARK_SCORING_PIPELINE = "spark_scoring_pipeline"
SPARK_SCORE_STEP = "score_on_spark_step"
SPARK_SCORING = "spark_scoring_summary"

# A model name becomes part of file paths (state, reports, locks), config files and command lines: one rule, checked
# where a name comes in (a config file, `--model-name`, and copier.yml's question for a generated project).
MODEL_NAME_RULE = "1 to 64 letters, digits, `_`, `-` or `.`, starting with a letter or digit"
MODEL_NAME_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def check_model_name(name: str) -> str:
    """`name` if it follows the model-name rule, else a ConfigError that names it, the rule and a fix."""
    if isinstance(name, str) and _MODEL_NAME.fullmatch(name):
        return name
    suggestion = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).lstrip("_.-")[:64].rstrip("_") or "my_model"
    raise ConfigError(
        f"model name {name!r} is not allowed: a model name is {MODEL_NAME_RULE}. "
        f"Fix: choose a name that follows this rule, e.g. `{suggestion}`."
    )


SPARK_MONITORING_PIPELINE = "spark_monitoring_pipeline"
WHOLE_BATCH_CHECK = "whole_batch_check"
BATCH_SAMPLE = "batch_sample"
BATCH_COUNTS = "batch_counts"

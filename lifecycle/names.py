"""Names of artifacts and steps, shared by steps, pipelines, run.py and tests."""

RAW_DATA = "raw_data"
CLEAN_DATA = "clean_data"
FEATURE_SCHEMA = "feature_schema"
DATA_QUALITY = "data_quality_report"
TRAIN_SET = "train_set"  # also the reference set for drift monitoring
TEST_SET = "test_set"
MODEL = "model"
EVALUATION = "evaluation_report"
PROMOTION = "promotion_decision"

TRAINING_PIPELINE = "training_pipeline"
PROMOTE_STEP = "promote_model"
EVALUATE_STEP = "evaluate"
VALIDATE_STEP = "validate_data"

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

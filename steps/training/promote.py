"""The training pipeline's promote step: this run's version goes to production (or staging) when it passes."""

from typing import Annotated

import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from lifecycle.config import PromotionConfig
from lifecycle.metrics import EvaluationReport
from lifecycle.mojo_model import TrainedModel
from lifecycle.names import PROMOTION
from lifecycle.promotion import PromotionDecision
from lifecycle.validation import FeatureSchema
from steps.training.releases import judge_candidate, promotion_lock, set_release_stage

logger = get_logger(__name__)


@step(enable_cache=False)
def promote_model(
    model: TrainedModel,
    test_set: pd.DataFrame,
    feature_schema: FeatureSchema,
    evaluation_report: EvaluationReport,
    promotion: PromotionConfig,
) -> Annotated[PromotionDecision, PROMOTION]:
    """Promote this run's model version (to production, or to staging with `release_stage`) if it passes the
    gates and beats the production model on the same rows."""
    this_version = get_step_context().model
    target = promotion.release_stage
    with promotion_lock(this_version.name):  # from reading production to moving the alias
        decision = judge_candidate(
            this_version.name, this_version.number, test_set, feature_schema, evaluation_report, promotion
        )
        decision.stage = target
        record = decision.model_dump(exclude_none=True)
        if decision.promoted:
            alias = set_release_stage(this_version.name, this_version.number, target, "train", decision.reason)
            if alias:
                record["mlflow_alias"] = alias
    log_metadata(
        metadata={"promotion": record},
        model_name=this_version.name,
        model_version=str(this_version.number),
    )
    verdict = f"promoted to {target}" if decision.promoted else "not promoted"
    logger.info("Model version %s %s: %s", this_version.number, verdict, decision.reason)
    return decision

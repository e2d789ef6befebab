import subprocess
from typing import Annotated

from zenml import get_step_context, log_metadata, step
from zenml.utils.source_utils import get_source_root

from lifecycle.config import TrainingConfig
from lifecycle.metrics import EvaluationReport
from lifecycle.validation import DataQualityReport, FeatureSchema


def git_commit(directory: str) -> str:
    """The commit the code ran from, `+dirty` when uncommitted changes were present, or `unknown`."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if status else commit


@step(enable_cache=False)
def register_model(
    evaluation_report: EvaluationReport,
    feature_schema: FeatureSchema,
    data_quality_report: DataQualityReport,
    training: TrainingConfig,
    data_fingerprint: str,
) -> Annotated[str, "model_version"]:
    """Record on the Model Control Plane version what is needed to trust and reproduce the model."""
    model = get_step_context().model
    log_metadata(
        metadata={
            "task": feature_schema.task,
            "target": feature_schema.target,
            "model_inputs": feature_schema.model_inputs,
            "metrics": evaluation_report.metrics,
            "baseline_metrics": evaluation_report.baseline_metrics,
            "primary_metric": evaluation_report.primary_metric,
            "estimator": training.estimator.name,
            "estimator_params": training.estimator.params,
            "seed": training.seed,
            "data_source": data_quality_report.source,
            "data_fingerprint_sha256": data_fingerprint,
            "train_rows_after_validation": data_quality_report.rows_out,
            "git_commit": git_commit(str(get_source_root())),
        },
        model_name=model.name,
        model_version=model.version,
    )
    return str(model.version)

"""Running the training and monitoring pipelines and collecting what they decided."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from zenml import Model
from zenml.client import Client
from zenml.models import PipelineRunResponse

from lifecycle.config import DEFAULT_SPARK_CONFIG, DeploymentConfig, MonitoringConfig, RunConfig, SparkConfig
from lifecycle.data import read_table
from lifecycle.environment import file_lock
from lifecycle.errors import LifecycleError, PipelineFailed
from lifecycle.hints import run_hint
from lifecycle.metrics import EvaluationReport
from lifecycle.monitoring import MonitoringSummary
from lifecycle.names import (
    DATA_QUALITY,
    DEPLOY_STEP,
    DEPLOYMENT,
    DEPLOYMENT_PIPELINE,
    DRIFT_REPORT,
    DRIFT_STEP,
    EVALUATE_STEP,
    EVALUATION,
    MONITORING_SUMMARY,
    PROMOTE_STEP,
    PROMOTION,
    SUMMARY_STEP,
    VALIDATE_STEP,
)
from lifecycle.promotion import PromotionDecision
from lifecycle.validation import DataQualityReport
from pipelines.production import production_artifacts
from pipelines.training import training_pipeline
from stacks.capabilities import StackCapabilities, active_capabilities, check_usable, prepare_local_mlflow
from workflows.console import compact_zenml_console
from workflows.report_files import write_monitoring_report
from workflows.versions import ReleaseError, production_version, version_named
from workflows.zenml_tuning import cache_package_lookups


@dataclass
class TrainingOutcome:
    run: PipelineRunResponse
    model_name: str
    model_version: str
    evaluation: EvaluationReport
    data_quality: DataQualityReport
    decision: PromotionDecision
    production_version: str | None
    mlflow_links: dict[str, str]
    stack: str
    estimator: str = ""
    estimator_params: dict = field(default_factory=dict)  # the fitted values of the configured or searched ones
    searched: list[str] = field(default_factory=list)  # parameters chosen by the grid search
    data_source: str = ""
    data_fingerprint: str = ""  # sha256 of the data file
    git_commit: str = ""


def step_output(run: PipelineRunResponse, step_name: str, artifact_name: str):
    outputs = run.steps[step_name].outputs[artifact_name]
    return (outputs[0] if isinstance(outputs, list) else outputs).load()


def ready_stack(verbose: bool = False) -> StackCapabilities:
    """Before any pipeline run: what the active stack offers, checked usable (integrations, servers). The
    console shows one line per finished step unless `verbose` (`run.py --verbose`) or ZENML_LOGGING_VERBOSITY
    asks for ZenML's log."""
    if not verbose and "ZENML_LOGGING_VERBOSITY" not in os.environ:
        compact_zenml_console()
    cache_package_lookups()
    capabilities = active_capabilities()
    check_usable(capabilities)
    return capabilities


def container_settings(capabilities: StackCapabilities, data_files: list[str]) -> dict[str, Any]:
    """ZenML settings for a stack that runs steps in containers (configs/containers.yaml, the input files' folders
    mounted read-only); none otherwise."""
    if not capabilities.runs_in_containers:
        return {}
    from workflows.remote_images import running_settings

    orchestrator = capabilities.get("orchestrator")
    flavor = orchestrator.flavor if orchestrator else "local_docker"
    return running_settings(data_files, flavor=flavor, step_operator=capabilities.get("step_operator") is not None)


def step_options(capabilities: StackCapabilities) -> dict[str, dict[str, Any]]:
    """Per-step options on this stack: the tracker on the tracked steps and, on a stack with a step operator,
    the steps configs/containers.yaml sends to it (with their settings)."""
    options = capabilities.step_options()
    step_operator = capabilities.get("step_operator")
    if step_operator is None:
        return options
    from workflows.remote_images import step_operator_options

    for step, extra in step_operator_options(step_operator.name).items():
        options[step] = {**options.get(step, {}), **extra}
    return options


class RunFailedInStep(RuntimeError):
    """A run that ended failed elsewhere (on a node): the message names the step and carries its error."""


def where_the_error_is(exc: RuntimeError) -> str:
    """`exc`'s message, ending with where the failing step's error is: in the message, or in the log above."""
    text = str(exc).rstrip(".")
    return f"{text}." if isinstance(exc, RunFailedInStep) else f"{text}. The failing step's error is in the log above."


def see_log_above(exc: RuntimeError) -> str:
    return where_the_error_is(exc)


def run_pipeline(
    pipeline: Any, failure: Callable[[RuntimeError], str] = see_log_above, **parameters: Any
) -> PipelineRunResponse:
    """Run a configured pipeline; a failed run (ZenML's RuntimeError "Pipeline run has failed due to failure in
    step(s): ...") becomes a PipelineFailed with `failure`'s message. Returns the run re-read from the store: the
    object the call returns predates the steps."""
    from datetime import datetime, timezone

    submitted = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        started = pipeline(**parameters)
        return wait_until_finished(started.id)
    except RuntimeError as exc:
        raise PipelineFailed(failure(with_step_error(exc, pipeline.name, submitted))) from exc


def with_step_error(exc: RuntimeError, pipeline_name: str, submitted: Any) -> RuntimeError:
    """ZenML's SSH orchestrator fails the submission itself when a step fails before the whole DAG has started,
    with Docker Compose's output (image pulls, container states) as the message: the run this client just
    submitted says which step failed and why."""
    if "`docker compose up` failed" not in str(exc):
        return exc
    with contextlib.suppress(Exception):  # the store cannot say more: the original error stands
        runs = Client().list_pipeline_runs(
            pipeline_name=pipeline_name, created=f"gte:{submitted:%Y-%m-%d %H:%M:%S}", size=1, hydrate=True
        )
        if runs.items:
            run = Client().get_pipeline_run(runs.items[0].id)
            failed = [name for name, step_run in run.steps.items() if step_run.status.value == "failed"]
            reason = failed_step_reason(run)
            if failed or reason:
                return RunFailedInStep(
                    f"Pipeline run {run.name} has failed in step(s) {', '.join(failed) or '?'}"
                    + (f": {reason}" if reason else "")
                )
    return exc


# An orchestrator that submits the run (ZenML's SSH orchestrator) returns while its steps still run elsewhere.
RUN_POLL_SECONDS = 3.0
RUN_TIMEOUT_SECONDS = float(os.environ.get("MLOPS_RUN_TIMEOUT", 4 * 3600))


def wait_until_finished(run_id: Any, timeout: float = RUN_TIMEOUT_SECONDS) -> PipelineRunResponse:
    """The run once it has ended, each step reported as it finishes (as a local run's log does); a failed run
    raises ZenML's own RuntimeError ("Pipeline run has failed due to failure in step(s): ..."), with the failing
    step's error."""
    import time

    from zenml.enums import ExecutionStatus
    from zenml.logger import get_logger

    client, logger = Client(), get_logger(__name__)
    run = client.get_pipeline_run(run_id)
    if run.status.is_finished and run.status != ExecutionStatus.FAILED:
        return run
    reported: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        for name, step_run in run.steps.items():
            if name not in reported and step_run.status.is_finished:
                reported.add(name)
                # (A cached step was reported when the run was submitted.)
                if step_run.status == ExecutionStatus.COMPLETED and step_run.end_time and step_run.start_time:
                    took = (step_run.end_time - step_run.start_time).total_seconds()
                    logger.info("Step `%s` has finished in `%.1fs`.", name, took)
        if run.status.is_finished:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"pipeline run {run.name} has not ended after {timeout:.0f} s (status {run.status.value}). "
                "Fix: see its steps with `zenml pipeline runs get` and the orchestrator's hosts; "
                "MLOPS_RUN_TIMEOUT sets the wait in seconds"
            )
        time.sleep(RUN_POLL_SECONDS)
        run = client.get_pipeline_run(run_id)
    if run.status == ExecutionStatus.FAILED:
        failed = [name for name, step_run in run.steps.items() if step_run.status == ExecutionStatus.FAILED]
        reason = failed_step_reason(run)
        raise (RunFailedInStep if reason else RuntimeError)(
            f"Pipeline run has failed due to failure in step(s): {', '.join(failed) or '?'}"
            + (f". {failed[0] if failed else 'The step'} failed with: {reason}" if reason else "")
        )
    return run


def sync_model_texts(config: RunConfig) -> None:
    """An existing model takes the config's description, intended use and limitations (ZenML sets them only when
    it creates the model), so the next card shows what the config says now."""
    texts = config.model
    with contextlib.suppress(KeyError):  # a new model: the run creates it with these texts
        Client().update_model(
            texts.name, description=texts.description, use_cases=texts.intended_use, limitations=texts.limitations
        )


def configured_training(config: RunConfig, capabilities: StackCapabilities, **options: Any) -> tuple[Any, dict]:
    """The training pipeline as every stack runs it (the model, the tracker on the tracked steps), and its
    parameters; `options` go to `with_options` too (e.g. the Docker settings of an offline compile)."""
    model = Model(
        name=config.model.name,
        description=config.model.description,
        tags=config.model.tags,
        use_cases=config.model.intended_use,
        limitations=config.model.limitations,
    )
    pipeline = training_pipeline.with_options(
        model=model,
        enable_cache=config.enable_cache,
        steps=step_options(capabilities),
        settings={**container_settings(capabilities, [config.dataset.path]), **options.pop("settings", {})},
        **options,
    )
    parameters = {
        "dataset": config.dataset,
        "split": config.split,
        "training": config.training,
        "evaluation": config.evaluation,
        "promotion": config.promotion,
    }
    return pipeline, parameters


def run_training(config: RunConfig, verbose: bool = False) -> TrainingOutcome:
    capabilities = ready_stack(verbose)
    prepare_tracking(capabilities)
    sync_model_texts(config)
    pipeline, parameters = configured_training(config, capabilities)
    run = run_pipeline(
        pipeline,
        lambda exc: f"{where_the_error_is(exc)} Nothing was promoted.",
        **parameters,
    )
    metadata = version_metadata(config.model.name, run)
    return TrainingOutcome(
        run=run,
        model_name=config.model.name,
        model_version=str(run.model_version.number) if run.model_version else "?",
        evaluation=step_output(run, EVALUATE_STEP, EVALUATION),
        data_quality=step_output(run, VALIDATE_STEP, DATA_QUALITY),
        decision=step_output(run, PROMOTE_STEP, PROMOTION),
        production_version=production_version(config.model.name, config.promotion.stage),
        mlflow_links=dict(metadata.get("mlflow") or {}),
        stack=capabilities.stack,
        estimator=str(metadata.get("estimator", "")),
        estimator_params=dict(metadata.get("estimator_params") or {}),
        searched=list((metadata.get("param_grid") or {}).keys()),
        data_source=str(metadata.get("data_source", "")),
        data_fingerprint=str(metadata.get("data_fingerprint_sha256", "")),
        git_commit=str(metadata.get("git_commit", "")),
    )


def prepare_tracking(capabilities: StackCapabilities) -> None:
    """`prepare_local_mlflow`, one process at a time: two runs started together on a new SQLite database would
    both create and migrate it, and one of them fails half-way (alembic: "expected to match one row")."""
    uri = capabilities.tracking_uri or ""
    if not uri.startswith("sqlite:///"):
        prepare_local_mlflow(capabilities)
        return
    with file_lock(Path(uri.removeprefix("sqlite:///")).parent / "prepare.lock"):
        prepare_local_mlflow(capabilities)


def version_metadata(model_name: str, run: PipelineRunResponse) -> dict:
    """What the run recorded on its model version (estimator, parameters, MLflow links when the stack has MLflow)."""
    if not run.model_version:
        return {}
    return dict(Client().get_model_version(model_name, run.model_version.number).run_metadata)


@dataclass
class MonitoringOutcome:
    run: PipelineRunResponse
    summary: MonitoringSummary
    report_path: Path
    summary_path: Path


def on_spark(batch_path: str, spark_path: str | Path = DEFAULT_SPARK_CONFIG) -> SparkConfig | None:
    """The Spark settings when this batch is monitored on Spark (a folder of CSV or Parquet files, or more rows
    than `monitor_above_rows` in configs/spark.yaml), else None."""
    from lifecycle.config import load_spark_config

    spark = load_spark_config(spark_path)
    if not spark.monitor_above_rows or not Path(batch_path).exists():
        return None
    from lifecycle.errors import DataError
    from lifecycle.spark_engine import estimated_rows, input_files

    try:
        input_files(batch_path)
    except DataError:
        return None  # an empty folder: the in-memory path names the problem
    if Path(batch_path).is_dir():
        return spark
    return spark if estimated_rows(batch_path) > spark.monitor_above_rows else None


def sampled_report_header(html: str, sample_rows: int, rows: int) -> str:
    """The sample's Evidently report, saying what it is and where the decision's figures come from."""
    note = (
        f'<div style="padding:8px;background:#fff3cd"><b>Evidently report on a seeded sample of {sample_rows} of '
        f"{rows} rows.</b> The batch check and the drift tests the decision uses are computed on Spark over the "
        "whole batch (the JSON summary); performance figures are the sample's.</div>"
    )
    return html.replace("<body>", "<body>" + note, 1) if "<body>" in html else note + html


def run_monitoring(
    model_name: str,
    batch_path: str,
    monitoring: MonitoringConfig,
    retrain_on_demand: bool = False,
    verbose: bool = False,
    spark_path: str | Path = DEFAULT_SPARK_CONFIG,
) -> MonitoringOutcome:
    """Monitor one batch against the production model; write the HTML report and JSON summary to reports/. A batch
    above configs/spark.yaml's `monitor_above_rows` (or a folder) is monitored on Spark."""
    from zenml.enums import ModelStages

    from pipelines.monitoring import monitoring_pipeline

    capabilities = ready_stack(verbose)
    spark = on_spark(batch_path, spark_path)
    parameters: dict[str, Any] = {}
    if spark is None:
        read_table(batch_path, allow_empty=True)  # an unreadable or missing file fails here, with its fix
        chosen = monitoring_pipeline
    else:
        from pipelines.monitoring import spark_monitoring_pipeline
        from workflows.spark_cluster import master_url

        chosen = spark_monitoring_pipeline
        parameters = {"master_url": master_url(spark), "spark": spark.model_dump()}
    pipeline = chosen.with_options(
        model=Model(name=model_name, version=ModelStages.PRODUCTION),
        settings=container_settings(capabilities, [batch_path] if Path(batch_path).is_file() else []),
    )
    run = run_pipeline(
        pipeline,
        model_name=model_name,
        batch_path=str(Path(batch_path).resolve()),
        policy=monitoring.policy,
        retrain_on_demand=retrain_on_demand,
        **parameters,
    )
    summary = step_output(run, SUMMARY_STEP, MONITORING_SUMMARY)
    drift_html = str(step_output(run, DRIFT_STEP, DRIFT_REPORT))
    if spark is not None:
        from lifecycle.names import BATCH_COUNTS

        counts = step_output(run, "batch_statistics_on_spark", BATCH_COUNTS)
        drift_html = sampled_report_header(drift_html, counts["sample_rows"], counts["rows"])
    report_path, summary_path = write_monitoring_report(
        monitoring, model_name, summary, drift_html, run.name, batch_path
    )
    return MonitoringOutcome(run=run, summary=summary, report_path=report_path, summary_path=summary_path)


_RAISED = re.compile(r"^[\w.]+(Error|Exception|Failed): ")


def failed_step_reason(run: PipelineRunResponse) -> str:
    """The exception message of the run's failed step, when ZenML recorded it."""
    for step_run in run.steps.values():
        info = getattr(step_run, "exception_info", None)
        if info is not None and getattr(info, "traceback", None):
            raised = [line for line in info.traceback.splitlines() if _RAISED.match(line)]
            if raised:
                return raised[-1].split(": ", 1)[-1]
    return ""


def run_deployment(
    model_name: str,
    deployment: DeploymentConfig,
    port: int | None = None,
    timeout: int | None = None,
    role: str = "production",
    version: str | None = None,
    weight: float | None = None,
    only_if_stale: bool = False,
    verbose: bool = False,
) -> dict:
    """Serve the model's production version on the active stack (or, as `role` canary or shadow, `version`
    beside it); returns what was recorded on the version. Production is what the Model Control Plane says when
    the front door switches, even when it moved after this call began (`serving.rollout.rollout`); the record's
    `requested_version` is the version production was when the deploy started. `only_if_stale`: start nothing
    when production's version serves already (the record then says `already_serving`)."""
    from zenml.enums import ModelStages

    from pipelines.deployment import deployment_pipeline

    capabilities = ready_stack(verbose)
    if capabilities.runs_in_containers:
        raise LifecycleError(
            f"stack `{capabilities.stack}` runs each step in a container that ends with the step, so a server it "
            "started would stop with it: models trained there are served from a machine's own stack on the same "
            f"store. Fix: `{run_hint()} stacks up team_s3 && zenml stack set team_s3`, then deploy again (the "
            "remote set-up's exports fill in its store, bucket and MLflow)."
        )
    production_artifacts(model_name, command="deploy")  # no production version: an error before any run is recorded
    # Production: read once, so that the run's model version and the step's artifacts are this one version
    # (see deployment_pipeline); the rollout then serves whatever production is at its switch.
    version = _trial_version(model_name, role, version) if role != "production" else production_version(model_name)
    pipeline = deployment_pipeline.with_options(model=Model(name=model_name, version=version or ModelStages.PRODUCTION))
    run = run_pipeline(
        pipeline,
        deployment_failure,
        model_name=model_name,
        deployment=deployment,
        port=port,
        timeout=timeout,
        role=role,
        version=version,
        weight=weight,
        only_if_stale=only_if_stale,
    )
    return step_output(run, DEPLOY_STEP, DEPLOYMENT)


def deployment_failure(exc: RuntimeError) -> str:
    """The failed deploy step's own message (a port in use, a server that never answered), else ZenML's."""
    runs = Client().list_pipeline_runs(pipeline_name=DEPLOYMENT_PIPELINE, sort_by="desc:created", size=1)
    reason = failed_step_reason(runs.items[0]) if runs.items else ""
    return f"deployment failed: {reason or exc}"


def _trial_version(model_name: str, role: str, version: str | None) -> str:
    """The version a canary or shadow serves: an existing version that is not production's."""
    if version is None:
        raise ReleaseError(f"a {role} serves a named version: `--{role} N`.")
    number = version_named(model_name, version).number
    if number == Client().get_model_version(model_name, "production").number:
        raise ReleaseError(
            f"version {number} of `{model_name}` is production already; a {role} serves another version beside "
            f"it. Fix: name a staging or earlier version (`{run_hint()} history` lists them)."
        )
    return str(number)


def end_serving_trial(model_name: str, role: str, deployment: DeploymentConfig, verbose: bool = False) -> list:
    """Take the model's canary or shadow on the active stack out of its front door and stop its server."""
    from serving.rollout import end_trial
    from serving.stack_backend import active_backend

    ready_stack(verbose)
    return end_trial(active_backend(), model_name, role, deployment)


def serves_here(capabilities: StackCapabilities) -> bool:
    """Whether this stack starts servers on this machine: it has a deployer and runs its steps here (a step in a
    container ends with its server)."""
    deploys = capabilities.get("model_deployer") is not None or capabilities.get("deployer") is not None
    return deploys and not capabilities.runs_in_containers


def redeploy_if_serving(model_name: str, deployment: DeploymentConfig, verbose: bool = False) -> dict | None:
    """After a change of production (promote, rollback, a retraining's promotion): replace the model's running
    server on the active stack with the production version (None when nothing serves the model here: nothing is
    started). It runs after the command released the promotion lock, and may wait for the deploy lock behind other
    deploys: it serves production as it is when it switches, and when another deploy that followed production
    already put that version behind the front door, it starts nothing (the record says `already_serving`).

    Only servers this checkout started count (its serving record): on a shared ZenML store a deployer may list
    another machine's servers (a serving machine's `serve --follow`), which that machine follows itself."""
    from serving.registry import served
    from serving.stack_backend import active_backend

    if not serves_here(active_capabilities()):
        return None
    backend = active_backend()
    record = served(backend.stack_id)
    ours = {e.name for e in record["endpoints"]} if record else set()
    if not [e for e in backend.endpoints(model_name) if e.running and e.role == "production" and e.name in ours]:
        return None
    return run_deployment(model_name, deployment, only_if_stale=True, verbose=verbose)


@dataclass
class ScoringOutcome:
    run: PipelineRunResponse
    model_name: str
    model_version: str
    scored: pd.DataFrame  # row, request_id, prediction (, probability)
    skipped: pd.DataFrame  # row, reason


def run_scoring(
    model_name: str, input_path: str, version: str | None, deployment: DeploymentConfig, verbose: bool = False
) -> ScoringOutcome:
    """Score a file with the production version (or `version`) in a batch scoring pipeline on the active stack:
    the predictions are an artifact of that version, and its rows go to the prediction log (backend `batch`)."""
    from zenml.enums import ModelStages

    from lifecycle.names import SCORE_STEP, SCORED, SKIPPED
    from pipelines.batch_scoring import batch_scoring_pipeline

    capabilities = ready_stack(verbose)
    if capabilities.runs_in_containers:
        raise LifecycleError(
            f"stack `{capabilities.stack}` runs each step in a container on another machine, and `score` writes every "
            "row to this machine's prediction log, which such a step cannot reach. Fix: score from a stack of this "
            f"machine on the same store: `{run_hint()} stacks up team_s3 && zenml stack set team_s3`, then score "
            "again."
        )
    read_table(input_path)  # an unreadable or empty file fails here, with its fix
    stage = version or "production"
    production_artifacts(model_name, stage=stage, command="score")  # the version exists, before a run is recorded
    pipeline = batch_scoring_pipeline.with_options(
        model=Model(name=model_name, version=version or ModelStages.PRODUCTION),
    )
    run = run_pipeline(
        pipeline,
        model_name=model_name,
        version=stage,
        input_path=str(Path(input_path).resolve()),
        log=deployment.log.settings(),
    )
    return ScoringOutcome(
        run=run,
        model_name=model_name,
        model_version=str(run.model_version.number) if run.model_version else stage,
        scored=step_output(run, SCORE_STEP, SCORED),
        skipped=step_output(run, SCORE_STEP, SKIPPED),
    )


@dataclass
class SparkScoringOutcome:
    run: PipelineRunResponse
    model_name: str
    model_version: str
    summary: dict[str, Any]  # rows, scored_rows, skipped_rows, output, skipped_folder, splits, master_url


def run_spark_scoring(
    model_name: str,
    input_path: str,
    output_path: str,
    version: str | None,
    deployment: DeploymentConfig,
    spark: SparkConfig,
    master_url: str,
    verbose: bool = False,
) -> SparkScoringOutcome:
    """Score a file or folder on a Spark cluster in a pipeline run on the active stack: the run records the job's
    summary (an artifact of the model version); the predictions stay in `output_path`."""
    from zenml.enums import ModelStages

    from lifecycle.names import SPARK_SCORE_STEP, SPARK_SCORING
    from pipelines.spark_scoring import spark_scoring_pipeline

    ready_stack(verbose)
    stage = version or "production"
    production_artifacts(model_name, stage=stage, command="score")  # the version exists, before a run is recorded
    pipeline = spark_scoring_pipeline.with_options(
        model=Model(name=model_name, version=version or ModelStages.PRODUCTION)
    )
    run = run_pipeline(
        pipeline,
        model_name=model_name,
        version=stage,
        input_path=str(Path(input_path).resolve()),
        output_path=str(Path(output_path).resolve()),
        master_url=master_url,
        spark=spark.model_dump(),
        log=deployment.log.settings(),
    )
    return SparkScoringOutcome(
        run=run,
        model_name=model_name,
        model_version=str(run.model_version.number) if run.model_version else stage,
        summary=step_output(run, SPARK_SCORE_STEP, SPARK_SCORING),
    )

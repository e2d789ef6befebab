"""`python run.py lifecycle`: a walk-forward replay of the dataset through the whole loop.

Train on the first weeks; then, period by period: monitor the period's batch with the model in production,
retrain on the newest labelled window when the policy triggers, promote if the new model beats production on the
same test rows. Beside it, the first model is scored on every batch and never retrained, to show what the loop buys.

With serving on (the default), the loop runs as production does: each period's rows are sent to the live server
(its prediction log keeps them), the period's labels are attached one period later (delayed labels), monitoring
reads what the server answered, and retraining uses the labels that have arrived by then.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from zenml.client import Client

from lifecycle.config import DeploymentConfig, MonitoringConfig, RunConfig
from lifecycle.data import read_table
from lifecycle.environment import state_dir
from lifecycle.errors import LifecycleError
from lifecycle.hints import run_hint
from lifecycle.metrics import score
from lifecycle.model_versions import loaded_artifact, loaded_model
from lifecycle.names import FEATURE_SCHEMA, MODEL
from lifecycle.windows import newest_window, rows_between, time_index
from serving.prediction_log_labels import attach_labels
from serving.prediction_log_reader import read_predictions
from workflows.production_loop import monitor_retrain_redeploy
from workflows.runner import TrainingOutcome, run_deployment, run_training
from workflows.served import log_root, served_batch
from workflows.versions import production_version


@dataclass
class PeriodResult:
    period: str
    rows: int
    drift_share: float | None
    error_in_production: float | None
    error_never_retrained: float | None
    retrained: bool
    promoted: bool
    version_in_production: str | None
    reasons: list[str]
    report: Path
    version_served: str | None = None  # what the server answers with after this period (serve: true)
    requests_served: int = 0  # serve: true — the period's rows sent to the server ...
    rows_served: int = 0
    rows_logged: int = 0  # ... and found in the prediction log
    candidate: Candidate | None = None  # the model retrained after this period, promoted or not
    # The error had every retrained model been promoted (the newest one scored here; the first model before any).
    error_every_retrain_promoted: float | None = None


@dataclass
class Candidate:
    """A model retrained after a period: how the promotion rule judged it, and what it scored on the next period
    (where it would have served had it been promoted: for a promoted one, the period's error in production)."""

    version: str
    promoted: bool
    score: float  # on its own test rows (the newest rows of its window)
    production_score: float | None  # the production model re-scored on the same rows
    kept_out_by: str  # the gates that blocked it, or "production" (did not beat it), or "" (promoted)
    reason: str
    test_rows: int
    next_period_error: float | None = None
    production_next_period_error: float | None = None  # the model it was judged against, on the same next period


@dataclass
class ReplayResult:
    metric: str
    model_name: str
    periods: list[PeriodResult] = field(default_factory=list)
    plot: Path | None = None
    seconds: float = 0.0
    endpoint: str | None = None  # the server's predict URL when the replay serves

    def mean_error(self, attribute: str) -> float:
        """Row-weighted mean of the per-period error, over periods where both models were scored."""
        scored = [p for p in self.periods if p.error_in_production is not None and p.error_never_retrained is not None]
        rows = sum(p.rows for p in scored)
        return sum(getattr(p, attribute) * p.rows for p in scored) / rows if rows else float("nan")

    def kept_out(self) -> list[tuple[PeriodResult, Candidate]]:
        """The retrained models the promotion rule kept out of production, with the period they followed."""
        return [(p, p.candidate) for p in self.periods if p.candidate is not None and not p.candidate.promoted]


def _with_data(config: RunConfig, path: Path, model_name: str) -> RunConfig:
    dataset = config.dataset.model_copy(update={"path": str(path)})
    model = config.model.model_copy(update={"name": model_name, "description": "Walk-forward replay model"})
    return config.model_copy(update={"dataset": dataset, "model": model})


def _archive_previous_lineage(model_name: str) -> str | None:
    """The replay starts its own lineage: an earlier replay's production version is archived first."""
    try:
        previous = Client().get_model_version(model_name, "production")
    except KeyError:
        return None
    Client().update_model_version(
        model_name_or_id=previous.model.id, version_name_or_id=previous.id, stage="archived", force=True
    )
    return str(previous.number)


def replay(
    config: RunConfig,
    monitoring: MonitoringConfig,
    progress: Callable[[str], None] = print,
    deployment: DeploymentConfig | None = None,
    verbose: bool = False,
) -> ReplayResult:
    started = time.monotonic()
    settings = monitoring.replay
    table = read_table(config.dataset.path)
    times = time_index(table, config.dataset)
    folder = state_dir() / "replay"
    folder.mkdir(parents=True, exist_ok=True)
    archived = _archive_previous_lineage(settings.model_name)
    if archived:
        progress(f"archived version {archived} of `{settings.model_name}` from an earlier replay")

    start = times.min().normalize()
    cursor = start + pd.Timedelta(days=settings.initial_training_days)
    initial = rows_between(table, times, start, cursor)
    initial_path = folder / "initial.csv"
    initial.to_csv(initial_path, index=False)
    progress(f"training the first model on {start:%Y-%m-%d} .. {cursor:%Y-%m-%d} ({len(initial)} rows)")
    first = run_training(_with_data(config, initial_path, settings.model_name), verbose=verbose)
    if not first.decision.promoted:
        raise RuntimeError(f"the first replay model was not promoted: {first.decision.reason}")
    never_retrained = loaded_model(Client().get_model_version(settings.model_name, "production"), MODEL)
    metric = first.evaluation.primary_metric
    result = ReplayResult(metric=metric, model_name=settings.model_name)
    served = None
    if settings.serve:
        try:
            record = run_deployment(settings.model_name, deployment or DeploymentConfig(), verbose=verbose)
        except LifecycleError as exc:
            raise LifecycleError(f"{exc} (or replay without serving: `{run_hint()} lifecycle --no-serve`)") from exc
        served, result.endpoint = record["model_version"], record["predict_url"]
        progress(f"serving version {served} at {record['predict_url']} ({record['backend']})")

    def redeploy() -> dict | None:
        if not settings.serve:
            return None
        try:
            return run_deployment(settings.model_name, deployment or DeploymentConfig(), verbose=verbose)
        except LifecycleError as exc:  # the old server keeps serving; the replay goes on
            progress(f"redeploy failed, version {served} still served: {exc}")
            return None

    end_of_data = times.max()
    period = pd.Timedelta(days=settings.period_days)
    periods = int((end_of_data - cursor) // period) + 1 if cursor <= end_of_data else 0
    total = min(periods, settings.max_periods) if settings.max_periods is not None else periods
    index = 0
    pending_labels: pd.DataFrame | None = None  # the previous period's labels, attached one period late
    judged: tuple[Candidate, object, object] | None = None  # last period's candidate, its model, production's model
    newest_model: object = never_retrained  # the newest model trained, promoted or not
    monitored_since: str | None = None
    while cursor <= end_of_data and (settings.max_periods is None or index < settings.max_periods):
        index += 1
        period_end = cursor + period
        batch = rows_between(table, times, cursor, period_end)
        label = f"{cursor:%Y-%m-%d}..{(period_end - pd.Timedelta(days=1)):%Y-%m-%d}"
        batch_path = folder / f"batch-{cursor:%Y%m%d}.csv"
        batch.to_csv(batch_path, index=False)
        traffic = None
        if settings.serve:
            # Production traffic: the period's rows go to the live server and into the prediction log; their
            # labels arrive one period later, and monitoring reads what the server answered.
            traffic = serve_period(settings.model_name, batch, config, deployment or DeploymentConfig(), cursor)
            if pending_labels is not None:
                attach_labels(log_root(deployment), settings.model_name, pending_labels, config.dataset.target)
            batch_path = served_batch(
                config.model_copy(update={"model": config.model.model_copy(update={"name": settings.model_name})}),
                since=monitored_since or traffic.started,
                deployment=deployment,
            ).path
            pending_labels, monitored_since = traffic.labels, traffic.started
        # Retrain on the labels known by now: with served traffic, this period's labels have not arrived.
        labels_until = cursor if traffic is not None else period_end

        def retraining(
            labels_until: pd.Timestamp = labels_until, period_end: pd.Timestamp = period_end
        ) -> tuple[RunConfig, str]:
            window = newest_window(table, times, labels_until, monitoring.policy.retrain_window_days)
            window_path = folder / f"window-{period_end:%Y%m%d}.csv"
            window.to_csv(window_path, index=False)
            return _with_data(config, window_path, settings.model_name), str(window_path)

        turn = monitor_retrain_redeploy(
            settings.model_name, str(batch_path), monitoring, retraining, redeploy, cards=False, verbose=verbose
        )
        outcome, summary = turn.monitoring, turn.monitoring.summary
        if turn.redeployed is not None:
            served, result.endpoint = turn.redeployed["model_version"], turn.redeployed["predict_url"]
        static_error = None
        labelled = batch[batch[config.dataset.target].notna()]

        def error_of(model: object, labelled: pd.DataFrame = labelled) -> float | None:
            if not len(labelled):
                return None
            answered = model.predict(labelled)  # type: ignore[attr-defined]
            return score(first.evaluation.task, labelled[config.dataset.target], answered).get(metric)

        static_error = error_of(never_retrained)
        if judged is not None:  # the previous period's candidate, promoted or not, on the rows that came next
            candidate, candidate_model, production_model = judged
            candidate.next_period_error = error_of(candidate_model)
            candidate.production_next_period_error = error_of(production_model)
        retrained = turn.retrained is not None
        promoted = turn.retrained is not None and turn.retrained.decision.promoted
        row = PeriodResult(
            period=label,
            rows=len(batch),
            drift_share=summary.drift.share if summary.drift.judged else None,
            error_in_production=traffic.error(first.evaluation.task, metric)
            if traffic
            else summary.performance.metrics.get(metric),
            error_never_retrained=static_error,
            retrained=retrained,
            promoted=promoted,
            version_in_production=production_version(settings.model_name),
            reasons=summary.decision.reasons,
            report=outcome.report_path,
            version_served=served,
            requests_served=traffic.requests if traffic else 0,
            rows_served=traffic.rows if traffic else 0,
            rows_logged=traffic.logged if traffic else 0,
            error_every_retrain_promoted=error_of(newest_model),
        )
        judged = None
        if turn.retrained is not None:
            row.candidate, models = judged_candidate(settings.model_name, turn.retrained)
            judged = (row.candidate, *models)
            newest_model = models[0]
        result.periods.append(row)
        progress(format_period(row, metric, index, time.monotonic() - started, total))
        cursor = period_end
    result.seconds = time.monotonic() - started
    return result


def judged_candidate(model_name: str, retrained: TrainingOutcome) -> tuple[Candidate, tuple[object, object]]:
    """The retrained model as the promotion rule judged it, with its model and the one it was compared with (to
    score both on the next period)."""
    decision = retrained.decision
    blocking = [gate.name for gate in decision.gates if gate.blocks]
    kept_out_by = "" if decision.promoted else ", ".join(blocking) or "production"
    candidate_model = loaded_model(Client().get_model_version(model_name, retrained.model_version), MODEL)
    production_model = candidate_model
    if decision.production_version is not None:
        production_model = loaded_model(Client().get_model_version(model_name, decision.production_version), MODEL)
    candidate = Candidate(
        version=str(retrained.model_version),
        promoted=decision.promoted,
        score=decision.candidate_score,
        production_score=decision.production_score,
        kept_out_by=kept_out_by,
        reason=decision.reason,
        test_rows=retrained.evaluation.test_rows,
    )
    return candidate, (candidate_model, production_model)


@dataclass
class PeriodTraffic:
    """One period's rows sent to the live server: what was answered, what the log holds, the labels to come."""

    started: str  # UTC time the first request was sent (the monitoring window starts here)
    requests: int
    rows: int
    logged: int
    predictions: list
    truth: pd.Series
    labels: pd.DataFrame  # request_id, row, target: attached one period later

    def error(self, task: str, metric: str) -> float | None:
        labelled = self.truth.notna().to_numpy()
        if not labelled.any():
            return None
        predicted = pd.Series(self.predictions)[labelled]
        return score(task, self.truth[labelled], predicted.to_numpy()).get(metric)


def serve_period(
    model_name: str, batch: pd.DataFrame, config: RunConfig, deployment: DeploymentConfig, cursor: pd.Timestamp
) -> PeriodTraffic:
    """Send the period's rows (without their labels) to the model's live server, in requests of up to
    `max_rows_per_request`, and count the rows the prediction log holds for them."""
    from serving.contract import json_records
    from serving.rollout import live_endpoint
    from serving.stack_backend import active_backend

    backend = active_backend()
    endpoint = live_endpoint(backend, model_name)
    if endpoint is None:
        raise LifecycleError(f"the replay's server for `{model_name}` is not answering; the replay cannot serve.")
    schema = loaded_artifact(Client().get_model_version(model_name, "production"), FEATURE_SCHEMA)
    started = pd.Timestamp.now(tz="UTC").isoformat()
    records = json_records(batch, schema)
    size = max(1, min(deployment.max_rows_per_request, 500))
    predictions: list = []
    labels = []
    ids = []
    for number, start in enumerate(range(0, len(records), size)):
        request_id = f"replay-{cursor:%Y%m%d}-{number}-{uuid.uuid4().hex[:6]}"
        answered, _ = backend.predict(endpoint, records[start : start + size], request_id=request_id)
        predictions.extend(answered)
        ids.append(request_id)
        truth = batch[config.dataset.target].iloc[start : start + size]
        labels.append(pd.DataFrame({"request_id": request_id, "row": range(len(truth)), config.dataset.target: truth}))
    logged = read_predictions(log_root(deployment), model_name, since=started, with_labels=False).frame
    return PeriodTraffic(
        started=started,
        requests=len(ids),
        rows=len(predictions),
        logged=int(logged["request_id"].isin(ids).sum()) if len(logged) else 0,
        predictions=predictions,
        truth=batch[config.dataset.target].reset_index(drop=True),
        labels=pd.concat(labels, ignore_index=True) if labels else pd.DataFrame(),
    )


def _num(value: float | None, pattern: str = "{:.1f}") -> str:
    return "—" if value is None else pattern.format(value)


def format_period(row: PeriodResult, metric: str, index: int, elapsed: float, total: int = 0) -> str:
    from workflows.console import progress_bar

    return (
        f"{progress_bar(index, total or index)} {row.period}  rows {row.rows:>4}  "
        f"drift {_num(row.drift_share, '{:.0%}'):>4}  "
        f"{metric} {_num(row.error_in_production):>6} (never retrained {_num(row.error_never_retrained):>6})  "
        f"retrained {'yes' if row.retrained else 'no ':<3}  promoted {'yes' if row.promoted else 'no ':<3}  "
        f"production v{row.version_in_production}"
        + (f"  serving v{row.version_served}" if row.version_served else "")
        + (
            f"  served {row.rows_served} rows in {row.requests_served} requests, logged {row.rows_logged}"
            if row.requests_served
            else ""
        )
        + f"  [{elapsed:.0f}s]"
    )


def timeline_table(result: ReplayResult) -> str:
    metric = result.metric
    lines = [
        f"| period | rows | drift share | {metric} in production | {metric} never retrained | retrained | promoted "
        "| version in production | version served | rows served / logged |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for p in result.periods:
        lines.append(
            f"| {p.period} | {p.rows} | {_num(p.drift_share, '{:.0%}')} | {_num(p.error_in_production)} | "
            f"{_num(p.error_never_retrained)} | {'yes' if p.retrained else 'no'} | {'yes' if p.promoted else 'no'} | "
            f"{p.version_in_production} | {p.version_served or '—'} | "
            f"{f'{p.rows_served} / {p.rows_logged}' if p.requests_served else '—'} |"
        )
    return "\n".join(lines)


def candidates_table(result: ReplayResult) -> str:
    """Every retrained model: how the promotion rule judged it on its own test rows, and what it and the model it
    was compared with then scored on the next period."""
    metric = result.metric
    lines = [
        f"| after period | candidate | test rows | {metric} on its test rows | production on the same rows | "
        f"promoted | kept out by | {metric} next period | production's next period |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for p in result.periods:
        c = p.candidate
        if c is None:
            continue
        lines.append(
            f"| {p.period} | v{c.version} | {c.test_rows} | {_num(c.score)} | {_num(c.production_score)} | "
            f"{'yes' if c.promoted else 'no'} | {c.kept_out_by or '—'} | {_num(c.next_period_error)} | "
            f"{_num(c.production_next_period_error)} |"
        )
    return "\n".join(lines)


def kept_out_summary(result: ReplayResult) -> list[str]:
    """What the models the promotion rule kept out would have scored where they would have served."""
    kept = result.kept_out()
    if not kept:
        return []
    scored = [c for _, c in kept if c.next_period_error is not None and c.production_next_period_error is not None]
    better = [c for c in scored if c.next_period_error < c.production_next_period_error]  # type: ignore[operator]
    by: dict[str, int] = {}
    for _, c in kept:
        by[c.kept_out_by] = by.get(c.kept_out_by, 0) + 1
    every = result.mean_error("error_every_retrain_promoted")
    return [
        f"kept out of production: {len(kept)} retrained models ("
        + ", ".join(f"{n} by {name}" for name, n in sorted(by.items()))
        + f"); on the next period {len(better)} of the {len(scored)} scored would have beaten the model kept",
        f"had every retrained model been promoted: {result.metric} {every:.2f} over the replay (row-weighted)",
    ]


def _or_nan(value: float | None) -> float:
    """A missing value as NaN, the gap matplotlib leaves in a line."""
    return float("nan") if value is None else value


def plot_errors(result: ReplayResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    periods = [p for p in result.periods if p.error_in_production is not None]
    labels = [p.period.split("..")[0] for p in periods]
    figure, axis = plt.subplots(figsize=(11, 4.5))
    axis.plot(labels, [_or_nan(p.error_in_production) for p in periods], marker="o", label="continuously trained")
    axis.plot(labels, [_or_nan(p.error_never_retrained) for p in periods], marker="s", label="never retrained")
    for position, p in enumerate(periods):
        if p.promoted:
            axis.axvline(position, color="green", alpha=0.12)
    axis.set_ylabel(f"{result.metric} on the period's batch")
    axis.set_xlabel("period start (green: a new model was promoted after this period)")
    axis.set_title(f"Walk-forward replay of `{result.model_name}`: error of the model in production")
    axis.tick_params(axis="x", rotation=60)
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def replay_settings(monitoring: MonitoringConfig, periods: int | None, no_serve: bool) -> MonitoringConfig:
    """The monitoring config with `lifecycle`'s --periods and --no-serve applied to its replay section."""
    changes: dict[str, object] = {"max_periods": periods} if periods else {}
    if no_serve:
        changes["serve"] = False
    return monitoring.model_copy(update={"replay": monitoring.replay.model_copy(update=changes)})


def replay_with_reports(
    config: RunConfig,
    monitoring: MonitoringConfig,
    deployment: DeploymentConfig,
    progress: Callable[[str], None],
    verbose: bool = False,
) -> list[str]:
    """`python run.py lifecycle`: the replay, its plot and timeline written to reports/lifecycle/; returns the
    timeline and the verdict to print."""
    from workflows.report_files import reports_folder

    result = replay(config, monitoring, progress=progress, deployment=deployment, verbose=verbose)
    folder = reports_folder(monitoring) / "lifecycle"
    result.plot = plot_errors(result, folder / "error_over_time.png")
    table = timeline_table(result)
    candidates = candidates_table(result)
    (folder / "timeline.md").write_text(table + "\n\nThe retrained models:\n\n" + candidates + "\n")
    continuous, static = result.mean_error("error_in_production"), result.mean_error("error_never_retrained")
    lines = [
        "\n" + table,
        "\n" + candidates,
        f"\n{result.metric} over the replay (row-weighted): continuously trained {continuous:.2f}, "
        f"never retrained {static:.2f}: continuous training has {(static - continuous) / static:.0%} lower error"
        if static == static and static
        else "",
        f"retrained {sum(p.retrained for p in result.periods)} times, promoted "
        f"{sum(p.promoted for p in result.periods)} times, in {result.seconds / 60:.1f} min",
        *kept_out_summary(result),
        f"plot: {result.plot}\ntimeline: {folder / 'timeline.md'}\n"
        f"drift and quality reports: {reports_folder(monitoring) / 'monitoring' / result.model_name}",
    ]
    if result.endpoint:
        lines.append(
            f"still serving `{result.model_name}` at {result.endpoint}; "
            f"stop it with: {run_hint()} undeploy --model-name {result.model_name}"
        )
    return lines

"""Human-readable summaries printed at the end of a run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lifecycle.hints import run_hint, tool_hint
from lifecycle.metrics import LOWER_IS_BETTER
from lifecycle.monitoring import versus_test_set

if TYPE_CHECKING:
    from workflows.release import ReleaseOutcome
    from workflows.runner import MonitoringOutcome, TrainingOutcome


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def training_summary(outcome: TrainingOutcome) -> str:
    from lifecycle.model_card import cards_folder

    evaluation, decision, quality = outcome.evaluation, outcome.decision, outcome.data_quality
    metric = evaluation.primary_metric
    lines = [
        "",
        f"Training run {outcome.run.name} on stack `{outcome.stack}`: "
        f"model `{outcome.model_name}` version {outcome.model_version}",
        f"  data: {quality.rows_out} of {quality.rows_in} rows used"
        + (f" ({quality.rows_without_target} without a target)" if quality.rows_without_target else ""),
        *(f"  set aside: `{column}` ({why})" for column, why in quality.dropped_columns.items()),
        *(f"  note: {warning}" for warning in quality.warnings),
        f"  test set: {evaluation.test_rows} rows ({evaluation.task})",
        f"  {'metric':<10} {'model':>10} {'baseline':>10} {'production':>11}",
    ]
    for name, value in evaluation.metrics.items():
        production = decision.production_score if name == metric else None
        marker = " *" if name == metric else ""
        lines.append(
            f"  {name + marker:<10} {_fmt(value):>10} {_fmt(evaluation.baseline_metrics.get(name)):>10} "
            f"{_fmt(production):>11}"
        )
    lines.append(
        f"  (* decides promotion; production = version {decision.production_version} re-scored on this test set)"
        if decision.production_version
        else "  (* decides promotion; there was no production version to compare with)"
    )
    if outcome.estimator_params:
        params = ", ".join(f"{name}={value}" for name, value in outcome.estimator_params.items())
        how = f"; chosen by the grid search: {', '.join(outcome.searched)}" if outcome.searched else ""
        lines.append(f"  estimator: {outcome.estimator} ({params}{how})")
    for segment in evaluation.flagged_segments:
        lines.append(
            f"  segment {segment.column}={segment.value}: {metric} {segment.gap:+.0%} vs overall "
            "(above the configured tolerance)"
        )
    naive = evaluation.naive_baseline
    if naive is not None and metric in naive.strongest:
        strongest = naive.strongest[metric]
        lines.append(f"  (baseline: the strongest naive predictor of each metric; for {metric}, {strongest})")
    lines += [f"  {gate.describe()}" for gate in decision.gates if gate.mode != "disabled"]
    verdict = f"PROMOTED to {decision.stage}" if decision.promoted else "NOT promoted"
    lines += [
        f"  {verdict}: {decision.reason}",
        *(f"  FLAG: {flag}" for flag in decision.flags),
        f"  in production now: version {outcome.production_version or 'none'}",
    ]
    links = outcome.mlflow_links
    if links:
        registered = links.get("mlflow_registered_version")
        lines.append(
            f"  MLflow: run {links.get('mlflow_run_id')}"
            + (f", registered `{outcome.model_name}` version {registered}" if registered else "")
            + (" (alias `champion` moved to it)" if registered and decision.promoted else "")
        )
    lines += [
        "",
        "Where to look:",
        f"  {tool_hint('zenml')} model version list --model={outcome.model_name}",
        f"  {tool_hint('zenml')} pipeline runs list --name={outcome.run.name}",
        f"  {run_hint()} card --model-name {outcome.model_name} --version {outcome.model_version}   (model card; "
        f"also {shown_path(str(cards_folder(outcome.model_name) / f'v{outcome.model_version}.html'))})",
        "  make dashboard   (the ZenML dashboard on this project's runs; `make dashboard-stop` ends it)",
    ]
    if links:
        lines.append(f"  {run_hint()} stacks list   (prints the MLflow UI command for this stack)")
    return "\n".join(lines)


def monitoring_summary(outcome: MonitoringOutcome) -> str:
    summary = outcome.summary
    drift, performance, batch = summary.drift, summary.performance, summary.batch
    lines = [
        "",
        f"Monitoring run {outcome.run.name}: `{summary.model_name}` version {summary.model_version} "
        f"on {batch.rows} rows of {summary.batch_source}",
        *(f"  batch: {problem}" for problem in batch.problems),
        (
            f"  drift: {drift.share:.0%} of {len(drift.columns)} columns drifted"
            + (f" ({', '.join(drift.drifted_columns)})" if drift.drifted_columns else "")
            if drift.judged
            else f"  drift: not judged ({drift.reason})"
        ),
    ]
    if performance.judged:
        metric = performance.metric
        lines.append(
            f"  performance: {metric} {performance.metrics[metric]:.4g} on {performance.labelled_rows} labelled rows, "
            f"{versus_test_set(performance.degradation or 0.0)} ({performance.reference_metrics[metric]:.4g}; "
            f"{'lower' if metric in LOWER_IS_BETTER else 'higher'} is better)"
        )
    else:
        lines.append(f"  performance: not judged ({performance.reason})")
    verdict = "RETRAIN" if summary.decision.retrain else "no retraining"
    lines += [f"  decision: {verdict} — {'; '.join(summary.decision.reasons)}"]
    lines += [f"  report: {outcome.report_path}", f"  summary: {outcome.summary_path}"]
    return "\n".join(lines)


def shown_path(path: str) -> str:
    """A path as a user can type it from the project folder (relative when it is inside)."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def trial_summary(model_name: str, record: dict) -> str:
    """A canary's or shadow's deploy: what it gets of the front door's traffic, and how to judge and end it."""
    role, door = record["role"], record.get("front_door_url")
    share = f"{record['weight']:g} % of the requests" if role == "canary" else "a copy of every request"
    answers = "its answers go back to those clients" if role == "canary" else "its answers are logged, never returned"
    replaced = record.get("replaced") or []
    return "\n".join(
        [
            "",
            f"`{model_name}` version {record['model_version']} as {role} at {record['url']} ({record['backend']}): "
            f"{share} through the front door {door}; {answers}",
            f"  ready in {record['seconds_to_ready']:.1f} s; smoke test: {record['smoke_test_rows']} held-out rows, "
            f"max |difference| {record['parity_max_abs_difference']:g}",
            *([f"  replaced: {', '.join(replaced)}"] if replaced else []),
            f"  judge it: {run_hint()} monitor --served --model-name {model_name}   (per version and role; "
            "with labels attached, their errors too)",
            f"  end it:   {run_hint()} deploy --{role} none --model-name {model_name}"
            + (
                f"   (or promote it: {run_hint()} promote --version " + str(record["model_version"]) + ")"
                if role == "canary"
                else ""
            ),
        ]
    )


def trial_ended_summary(model_name: str, role: str, stopped: list) -> str:
    if not stopped:
        return f"`{model_name}` has no {role} on this stack; nothing to end."
    versions = ", ".join(sorted({f"version {e.model_version}" for e in stopped}))
    return f"`{model_name}`: the {role} ({versions}) is out of the front door and stopped; production answers all."


def deployment_summary(model_name: str, record: dict) -> str:
    if record.get("role", "production") != "production":
        return trial_summary(model_name, record)
    replaced = record.get("replaced") or []
    example = shown_path(record["example_request"])
    door = record.get("front_door_url")
    return "\n".join(
        [
            "",
            f"Serving `{model_name}` version {record['model_version']} with {record['backend']} at {record['url']}",
            f"  front door: {door} (the model's stable address; each deploy switches what stands behind it)"
            if door
            else f"  front door: none, so this address changes with each deploy; {front_door_absence()}",
            f"  ready in {record['seconds_to_ready']:.1f} s; smoke test: {record['smoke_test_rows']} held-out rows "
            f"over HTTP, max |difference| from in-process predictions {record['parity_max_abs_difference']:g}",
            *([f"  replaced: {', '.join(replaced)} (stopped after the new server passed)"] if replaced else []),
            f"  predict: POST {record['predict_url']}   health: GET {record['health_url']}",
            f"  try it:  {run_hint()} predict --model-name {model_name} --input {example}",
            f"  status:  {run_hint()} status --model-name {model_name}",
            f"  stop it: {run_hint()} undeploy --model-name {model_name}",
        ]
    )


def front_door_absence() -> str:
    from lifecycle.config import load_deployment_config
    from serving.front_door import INSTALL_HINT, nginx_binary

    if nginx_binary() is None:
        return INSTALL_HINT
    if load_deployment_config().front_door.enabled == "off":
        return "front_door.enabled is off in configs/deployment.yaml"
    return "deploy again to start it"


def front_door_lines(model_names: set[str]) -> list[str]:
    from serving.front_door import current

    lines = []
    for name in sorted(model_names):
        door = current(name)
        if door is None:
            continue
        canary = door.route("canary")
        production_share = f"{100 - canary.weight:g} %" if canary else "all requests"
        lines.append(
            f"  front door of `{name}`: {door.url} -> version {door.model_version} ({door.backend}, "
            f"{door.upstream}): {production_share}"
        )
        if canary:
            lines.append(f"    canary: version {canary.model_version} ({canary.upstream}): {canary.weight:g} %")
        shadow = door.route("shadow")
        if shadow:
            lines.append(
                f"    shadow: version {shadow.model_version} ({shadow.upstream}): a copy of every request, "
                "answers logged only"
            )
    return lines


def status_table(
    stack: str, backend: str, model_name: str | None, endpoints, health: dict, standbys: dict | None = None
) -> str:
    """`standbys`: server name -> its `serving.standby.Standby` (a production server kept warm, no traffic)."""
    standbys = standbys or {}
    lines = [f"stack `{stack}` serves with {backend}" + (f"; model `{model_name}`" if model_name else "; every model")]
    lines += front_door_lines({e.model_name for e in endpoints} | ({model_name} if model_name else set()))
    if not endpoints:
        deploy = f"{run_hint()} deploy --model-name {model_name}" if model_name else f"{run_hint()} deploy"
        lines.append("  nothing deployed" + (f" for `{model_name}`" if model_name else "") + f": {deploy}")
    for endpoint in sorted(endpoints, key=lambda e: (e.model_name, e.created)):
        state = "healthy" if health.get(endpoint.name) else ("running, not answering" if endpoint.running else "DOWN")
        role = "" if endpoint.role == "production" else f" ({endpoint.role})"
        waiting = standbys.get(endpoint.name)
        role = " (standby)" if waiting is not None else role
        lines.append(
            f"  {endpoint.model_name:<20} version {endpoint.model_version + role:<13} {state:<22} "
            f"{endpoint.predict_url or '-'}" + (f"  pid {endpoint.pid}" if endpoint.pid else "")
        )
        if waiting is not None:
            lines.append(
                f"    warm standby, no traffic, until {waiting.expires_at()} ({max(waiting.left(), 0):.0f} s left): "
                f"`{run_hint()} rollback` to version {endpoint.model_version} switches to it"
            )
        if not endpoint.running:
            lines.append(
                f"    (its process is gone: `{run_hint()} deploy --model-name {endpoint.model_name}` starts a new one)"
            )
    return "\n".join(lines)


def release_summary(outcome: ReleaseOutcome) -> str:
    """What `promote` or `rollback` did: the rule's verdict, production before and after, the server."""
    name, lines = outcome.model_name, [""]
    decision = outcome.decision
    if decision is not None:
        lines += [f"  {gate.describe()}" for gate in decision.gates if gate.mode != "disabled"]
        verdict = "passes" if decision.promoted else "does not pass"
        lines.append(f"  version {outcome.version} {verdict} the promotion rule: {decision.reason}")
        lines += [f"  FLAG: {flag}" for flag in decision.flags]
    if not outcome.changed:
        lines += [
            f"NOT promoted: production stays version {outcome.previous}.",
            f"  To override: {run_hint()} promote --model-name {name} --version {outcome.version} --force "
            '--reason "..."',
        ]
        return "\n".join(lines)
    how = "FORCED into" if outcome.forced else ("rolled back to" if decision is None else "promoted to")
    lines.append(
        f"`{name}` version {outcome.version} {how} production"
        + (f"; version {outcome.previous} archived" if outcome.previous else "")
    )
    lines += [f"  {note}" for note in outcome.notes]
    if outcome.redeployed is None:
        lines.append(f"  nothing serves this model on the active stack: `{run_hint()} deploy` starts a server")
    else:
        # A redeploy that found production's version serving already started nothing: nothing was replaced.
        replaced = not outcome.redeployed.get("already_serving")
        how = "server replaced without downtime" if replaced else "server already serving"
        lines.append(
            f"  {how}: {outcome.redeployed['predict_url']} answers with version "
            f"{outcome.answering_version}, {outcome.seconds_to_answer:.1f} s after the command started"
        )
    lines.append(f"  {run_hint()} history --model-name {name}")
    return "\n".join(lines)


def history_table(model_name: str, events: list[dict]) -> str:
    """The release timeline, oldest first."""
    if not events:
        return (
            f"`{model_name}`: no stage change recorded yet (versions promoted before release history was kept "
            f"show only in `{tool_hint('zenml')} model version list`)."
        )
    header = ("when (UTC)", "version", "stage", "command", "by")
    rows = [header] + [
        (e["at"].replace("+00:00", ""), str(e["version"]), e["stage"], e["command"], e["by"]) for e in events
    ]
    reasons = ["reason"] + [e["reason"] for e in events]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"Release history of `{model_name}`:"]
    for row, reason in zip(rows, reasons, strict=True):
        lines.append(
            "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + "  " + reason
        )
    return "\n".join(lines)


def training_record(outcome: TrainingOutcome) -> dict:
    """What a CI job needs from `train`, as plain data (`--summary-json`; `--summary-md` renders it)."""
    evaluation, decision, quality = outcome.evaluation, outcome.decision, outcome.data_quality
    metric = evaluation.primary_metric
    return {
        "command": "train",
        "model": outcome.model_name,
        "version": outcome.model_version,
        "stack": outcome.stack,
        "run": outcome.run.name,
        "promoted": decision.promoted,
        "stage": decision.stage if decision.promoted else None,
        "reason": decision.reason,
        "gates": [gate.model_dump() for gate in decision.gates],
        "flags": decision.flags,
        "primary_metric": metric,
        "metrics": {
            name: {
                "candidate": value,
                "naive_baseline": evaluation.baseline_metrics.get(name),
                "production": decision.production_score if name == metric else None,
            }
            for name, value in evaluation.metrics.items()
        },
        "production_version_compared": decision.production_version,
        "production_version_now": outcome.production_version,
        "segments": [
            {"column": s.column, "value": s.value, "rows": s.rows, metric: s.metrics.get(metric), "flagged": s.flagged}
            for s in evaluation.segments
        ],
        "data": {
            "source": outcome.data_source,
            "sha256": outcome.data_fingerprint,
            "rows_in": quality.rows_in,
            "rows_used": quality.rows_out,
            "test_rows": evaluation.test_rows,
        },
        "git_commit": outcome.git_commit,
    }


def training_markdown(record: dict) -> str:
    """The training record as a CI job summary or pull-request comment."""
    metric = record["primary_metric"]
    verdict = f"**promoted to {record['stage']}**" if record["promoted"] else "**not promoted**"
    compared = record["production_version_compared"]
    lines = [
        f"### `{record['model']}` version {record['version']}: {verdict}",
        "",
        f"{record['reason']}",
        "",
        f"| metric | candidate | naive baseline | production{f' v{compared}' if compared else ''} |",
        "|---|---|---|---|",
    ]
    for name, values in record["metrics"].items():
        marker = " (decides)" if name == metric else ""
        lines.append(
            f"| {name}{marker} | {_fmt(values['candidate'])} | {_fmt(values['naive_baseline'])} | "
            f"{_fmt(values['production'])} |"
        )
    lines += ["", "| gate | mode | verdict | figures |", "|---|---|---|---|"]
    for gate in record["gates"]:
        verdict = {True: "passed", False: "failed", None: "not checked"}[gate["passed"]]
        lines.append(f"| {gate['name']} | {gate['mode']} | {verdict} | {gate['detail']} |")
    if record["segments"]:
        lines += ["", f"| segment | rows | {metric} | flagged |", "|---|---|---|---|"]
        for segment in record["segments"]:
            flagged = "yes" if segment["flagged"] else ""
            lines.append(
                f"| {segment['column']}={segment['value']} | {segment['rows']} | {_fmt(segment[metric])} | {flagged} |"
            )
    data = record["data"]
    lines += [
        "",
        *(f"- flag: {flag}" for flag in record["flags"]),
        f"- data: `{data['source']}`, sha256 `{data['sha256'][:16]}…`, {data['rows_used']} of {data['rows_in']} rows "
        f"used, {data['test_rows']} test rows",
        f"- run `{record['run']}` on stack `{record['stack']}`, commit `{record['git_commit'] or 'unknown'}`",
        f"- in production now: version {record['production_version_now'] or 'none'}",
    ]
    return "\n".join(lines) + "\n"


def release_record(outcome: ReleaseOutcome, command: str) -> dict:
    """What `promote` (or `rollback`) did, as plain data."""
    decision = outcome.decision
    return {
        "command": command,
        "model": outcome.model_name,
        "version": outcome.version,
        "previous_production": outcome.previous,
        "changed": outcome.changed,
        "forced": outcome.forced,
        "promoted": outcome.changed,
        "reason": decision.reason if decision else None,
        "gates": [gate.model_dump() for gate in decision.gates] if decision else [],
        "served_version": outcome.answering_version,
        "seconds_to_answer": outcome.seconds_to_answer,
    }


def release_markdown(record: dict) -> str:
    what = "forced into production" if record["forced"] else "promoted to production"
    head = (
        f"### `{record['model']}` version {record['version']} {what}"
        if record["changed"]
        else f"### `{record['model']}` version {record['version']} not promoted"
    )
    lines = [head, "", record["reason"] or "", "", "| gate | mode | verdict | figures |", "|---|---|---|---|"]
    for gate in record["gates"]:
        verdict = {True: "passed", False: "failed", None: "not checked"}[gate["passed"]]
        lines.append(f"| {gate['name']} | {gate['mode']} | {verdict} | {gate['detail']} |")
    lines.append(f"\n- production before: version {record['previous_production'] or 'none'}")
    if record["served_version"]:
        lines.append(f"- served now: version {record['served_version']} ({record['seconds_to_answer']:.1f} s)")
    return "\n".join(lines) + "\n"


def monitoring_markdown(outcome: MonitoringOutcome) -> str:
    """The monitoring verdict as a CI job summary."""
    summary = outcome.summary
    drift, performance, decision = summary.drift, summary.performance, summary.decision
    verdict = "**retrain**" if decision.retrain else "no retraining"
    lines = [
        f"### Monitoring `{summary.model_name}` version {summary.model_version}: {verdict}",
        "",
        f"- batch: `{summary.batch_source}`, {summary.batch.rows} rows",
        f"- drift: {drift.share:.0%} of {len(drift.columns)} columns drifted"
        + (f" ({', '.join(drift.drifted_columns)})" if drift.drifted_columns else "")
        if drift.judged
        else f"- drift: not judged ({drift.reason})",
    ]
    if performance.judged and performance.metric in performance.metrics:
        metric = performance.metric
        lines.append(
            f"- performance: {metric} {_fmt(performance.metrics[metric])} on {performance.labelled_rows} labelled "
            f"rows vs {_fmt(performance.reference_metrics.get(metric))} on the model's test set"
        )
    lines += [f"- decision: {'; '.join(decision.reasons) or 'no trigger'}", f"- report: `{outcome.report_path}`"]
    return "\n".join(lines) + "\n"


def redeploy_note(promoted: bool, redeployed: dict | None) -> str:
    """What a promotion did to the model's server on the active stack."""
    if not promoted:
        return "Production unchanged; the server (if any) keeps serving it."
    if redeployed is None:
        return (
            "A new version is in production; batch monitoring uses it from now on. Nothing serves this model on "
            f"the active stack: `{run_hint()} deploy` starts a server."
        )
    door = redeployed.get("front_door_url")
    return (
        f"A new version is in production and now served: version {redeployed['model_version']} at "
        f"{redeployed['predict_url']} replaced {', '.join(redeployed['replaced']) or 'nothing'}"
        + (f"; the front door {door} answers with it." if door else ".")
    )

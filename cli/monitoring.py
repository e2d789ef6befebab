"""Monitoring and what the servers answered: `monitor`, `lifecycle`, `predictions`, `labels`, `trace`.

Workflows are imported inside the commands: importing ZenML takes seconds, and `--help` needs none of it."""

from __future__ import annotations

import os

import click

from cli.options import (
    Settings,
    chosen_model,
    config_option,
    deployment_config_option,
    model_name_option,
    monitoring_config_option,
    on_stack,
    pass_settings,
    reports_errors,
    say,
    serving_target,
    summary_options,
    write_summaries,
)
from lifecycle.config import load_config, load_deployment_config, load_monitoring_config


@click.command()
@click.option("--batch", "batch_path", type=click.Path(), help="CSV or Parquet batch to monitor.")
@click.option(
    "--served",
    is_flag=True,
    help="Monitor what the model's servers answered (the prediction log, with the labels attached so far).",
)
@click.option("--since", help="With --served: rows logged from this time (UTC, e.g. 2026-12-01 or 2026-12-01T08:00).")
@click.option("--until", help="With --served: rows logged before this time (UTC).")
@config_option("Training config: the model monitored and how it retrains.")
@monitoring_config_option("Thresholds and reports folder.")
@model_name_option("Model whose production version is monitored (default: the config's).")
@click.option(
    "--retrain",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="auto: when the policy triggers; always: on demand; never: report only.",
)
@deployment_config_option("Serving settings, for the redeploy after a promotion.")
@summary_options
@on_stack
@pass_settings
def monitor(
    settings: Settings,
    batch_path: str | None,
    served: bool,
    since: str | None,
    until: str | None,
    config_path: str,
    monitoring_path: str,
    model_name: str | None,
    retrain: str,
    deployment_path: str,
    summary_md: str | None,
    summary_json: str | None,
) -> None:
    """Check a new batch (a file, or what the servers answered) against the production model: drift, data
    quality, performance; retrain if due, promote if better, redeploy."""
    from lifecycle.data import read_table
    from workflows import production_loop as loop

    if bool(batch_path) == served:
        raise click.UsageError("give either --batch FILE or --served (what the model's servers answered).")
    if batch_path:
        from workflows.runner import on_spark

        if on_spark(batch_path) is None:  # a batch for Spark is not read here: it may not fit in memory
            read_table(batch_path, allow_empty=True)  # a bad batch file is named before anything else is said or run
    config = chosen_model(config_path, model_name).config
    monitoring, deployment = load_monitoring_config(monitoring_path), load_deployment_config(deployment_path)
    if served:
        batch_path = loop.served_batch_path(config, since, until, deployment, say)
    assert batch_path is not None
    outcome = loop.monitor_production(config, batch_path, monitoring, deployment, retrain, say, settings.verbose)
    write_summaries(*loop.monitoring_result(outcome), summary_md, summary_json)


@click.command()
@config_option("Training config: dataset (with time columns), model, promotion.")
@monitoring_config_option("Policy and replay settings.")
@click.option("--periods", type=int, help="Stop after this many periods (default: the config's, else all).")
@click.option("--no-serve", is_flag=True, help="Do not deploy the replay's models (faster).")
@deployment_config_option()
@on_stack
@pass_settings
def lifecycle(
    settings: Settings,
    config_path: str,
    monitoring_path: str,
    periods: int | None,
    no_serve: bool,
    deployment_path: str,
) -> None:
    """Walk-forward replay: train on the first weeks, then monitor, retrain and promote period by period."""
    os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "WARN")  # the timeline is the progress report
    from workflows.replay import replay_settings, replay_with_reports

    config = load_config(config_path)
    monitoring = replay_settings(load_monitoring_config(monitoring_path), periods, no_serve)
    deployment = load_deployment_config(deployment_path)
    for line in replay_with_reports(config, monitoring, deployment, _progress, settings.verbose):
        click.echo(line)


def _progress(line: str) -> None:
    click.secho(line, fg="cyan")


@click.command()
@config_option("Training config: names the model.")
@model_name_option()
@click.option("--all", "all_models", is_flag=True, help="Every model's log.")
@click.option("--since", help="Rows logged from this time (UTC, e.g. 2026-12-01 or 2026-12-01T08:00).")
@click.option("--until", help="Rows logged before this time (UTC).")
@click.option("--output", "output_path", help="Write the rows to this .csv or .parquet file.")
@click.option("--tail", type=int, default=10, show_default=True, help="Rows to print (without --output).")
@deployment_config_option("Serving settings: where the prediction log is.")
@reports_errors
def predictions(
    config_path: str,
    model_name: str | None,
    all_models: bool,
    since: str | None,
    until: str | None,
    output_path: str | None,
    tail: int,
    deployment_path: str,
) -> None:
    """What the servers answered: the prediction log (list or export), with a one-line summary."""
    from workflows.served import export_lines

    name = serving_target(config_path, model_name, all_models)
    for line in export_lines(name, since, until, output_path, tail, load_deployment_config(deployment_path)):
        click.echo(line)


@click.command()
@click.option("--file", "truth_path", required=True, help="CSV or Parquet with the labels (ground truth).")
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="Join on this field kept in the log (repeatable; default: request_id, and row when present).",
)
@click.option("--label-column", help="The labels' column (default: the model's target).")
@config_option("Training config: names the model.")
@model_name_option()
@deployment_config_option("Serving settings: where the prediction log is.")
@reports_errors
def labels(
    truth_path: str,
    keys: tuple[str, ...],
    label_column: str | None,
    config_path: str,
    model_name: str | None,
    deployment_path: str,
) -> None:
    """Attach ground truth that arrived later to the logged predictions (then `monitor --served` scores them)."""
    from workflows.served import attach_lines

    config = chosen_model(config_path, model_name).config
    deployment = load_deployment_config(deployment_path)
    for line in attach_lines(config, truth_path, label_column, list(keys), deployment):
        click.echo(line)


@click.command()
@click.argument("request_id")
@model_name_option()
@deployment_config_option("Serving settings: where the prediction log is.")
@reports_errors
def trace(request_id: str, model_name: str | None, deployment_path: str) -> None:
    """One served prediction back to its model version, training run, data fingerprint, commit and deployment."""
    from workflows.served import trace as trace_request

    click.echo(trace_request(request_id, model_name, load_deployment_config(deployment_path)).text())


COMMANDS = [monitor, lifecycle, predictions, labels, trace]

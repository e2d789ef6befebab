"""Training and releases: `train`, `promote`, `rollback`, `history`, `card`.

Workflows are imported inside the commands: importing ZenML takes seconds, and `--help` needs none of it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.options import (
    Settings,
    chosen_model,
    config_option,
    deployment_config_option,
    model_name_option,
    on_stack,
    pass_settings,
    reports_errors,
    say,
    summary_options,
    write_summaries,
)
from lifecycle.config import load_deployment_config
from lifecycle.errors import EXIT_NOT_PROMOTED, EXIT_NOT_SERVED


@click.command()
@config_option("YAML file describing dataset, model and promotion policy.")
@click.option("--data", help="CSV or Parquet file to train on (replaces the config's dataset).")
@click.option("--target", help="Column to predict.")
@click.option("--task", type=click.Choice(["regression", "classification"]), help="Inferred when omitted.")
@click.option(
    "--time-column",
    "time_columns",
    multiple=True,
    help="Column ordering rows in time (repeatable); the newest rows become the test set.",
)
@click.option("--segment", "segment_columns", multiple=True, help="Column to report metrics per value of (repeatable).")
@model_name_option("Model Control Plane name (default: from the config, or the data file name).")
@click.option("--seed", type=int, help="Random seed (default: from the config).")
@click.option("--no-cache", is_flag=True, help="Re-run every step instead of reusing cached results.")
@click.option(
    "--challenger",
    "challengers",
    multiple=True,
    type=click.Choice(["h2o_automl"]),
    help="Also train this challenger on the same rows; the better one is the candidate (needs the `automl` extra).",
)
@click.option(
    "--stage",
    type=click.Choice(["production", "staging"]),
    help="Where a candidate that passes goes: production (default), or staging to wait for `run.py promote`.",
)
@click.option("--require-promotion", is_flag=True, help=f"Exit {EXIT_NOT_PROMOTED} when the candidate is not promoted.")
@click.option(
    "--redeploy/--no-redeploy",
    default=True,
    show_default=True,
    help="After a promotion to production, replace the model's server on the active stack (when one serves it).",
)
@deployment_config_option("Serving settings, for the redeploy after a promotion.")
@summary_options
@on_stack
@pass_settings
def train(
    settings: Settings,
    config_path: str,
    time_columns: tuple[str, ...],
    segment_columns: tuple[str, ...],
    no_cache: bool,
    challengers: tuple[str, ...],
    stage: str | None,
    require_promotion: bool,
    redeploy: bool,
    deployment_path: str,
    summary_md: str | None,
    summary_json: str | None,
    **overrides: str | int | None,  # --data, --target, --task, --model-name, --seed
) -> None:
    """Train, evaluate, register and (if it beats production) promote a model; a promoted model that is served
    on the active stack is redeployed (its front door keeps its address)."""
    from workflows import training

    columns = {"time_columns": list(time_columns), "segment_columns": list(segment_columns)}
    cache = {"enable_cache": False if no_cache else None}
    config = training.training_config(
        config_path, stage, **columns, **cache, challengers=list(challengers), **overrides
    )
    outcome = training.train(config, say, settings.verbose)
    write_summaries(*training.training_result(outcome), summary_md, summary_json)
    if redeploy:
        training.redeploy_promoted(config, outcome, deployment_path, say, settings.verbose)
    if require_promotion and not outcome.decision.promoted:
        click.secho("not promoted, and --require-promotion was given", fg="red", err=True)
        sys.exit(EXIT_NOT_PROMOTED)


@click.command()
@config_option("Training config: names the model and its promotion rule.")
@deployment_config_option()
@model_name_option()
@click.option("--version", help="Version number to promote (default: the version in staging).")
@click.option("--force", is_flag=True, help="Promote even if the promotion rule says no (needs --reason).")
@click.option("--reason", help="Why: recorded on the version and shown by `run.py history`.")
@click.option("--require-promotion", is_flag=True, help=f"Exit {EXIT_NOT_PROMOTED} when the version is not promoted.")
@click.option(
    "--wait-served",
    type=float,
    metavar="SECONDS",
    help=f"Then wait until a `serve --follow` reports the new production version answering (exit {EXIT_NOT_SERVED} "
    "when none does within SECONDS).",
)
@summary_options
@on_stack
@pass_settings
def promote(
    settings: Settings,
    config_path: str,
    deployment_path: str,
    model_name: str | None,
    version: str | None,
    force: bool,
    reason: str | None,
    require_promotion: bool,
    wait_served: float | None,
    summary_md: str | None,
    summary_json: str | None,
) -> None:
    """Promote the staging (or named) version to production if it still beats production; the server follows
    (here, when one serves the model on the active stack; on a serving machine, its `serve --follow`)."""
    from workflows import release

    config = chosen_model(config_path, model_name).config
    deployment = load_deployment_config(deployment_path)
    outcome = release.promote(
        config.model.name, version, config.promotion, deployment, force=force, reason=reason, verbose=settings.verbose
    )
    release.report_release(outcome, say)
    write_summaries(*release.release_result(outcome, "promote"), summary_md, summary_json)
    if require_promotion and not outcome.changed:
        sys.exit(EXIT_NOT_PROMOTED)
    if wait_served is not None and outcome.changed:
        from workflows.follow import wait_served as wait

        wait(outcome.model_name, str(outcome.version), wait_served, say=say)


@click.command()
@config_option("Training config: names the model.")
@deployment_config_option()
@model_name_option()
@click.option(
    "--to",
    "to_version",
    metavar="VERSION",
    help="Version to put back in production (default: the most recent earlier production version that was not "
    "itself rolled back). May name a rolled-back version: the output and the history say so.",
)
@click.option("--reason", help="Why: recorded on both versions and shown by `run.py history`.")
@click.option(
    "--wait-served",
    type=float,
    metavar="SECONDS",
    help=f"Then wait until a `serve --follow` reports the new production version answering (exit {EXIT_NOT_SERVED} "
    "when none does within SECONDS).",
)
@on_stack
@pass_settings
def rollback(
    settings: Settings,
    config_path: str,
    deployment_path: str,
    model_name: str | None,
    to_version: str | None,
    reason: str | None,
    wait_served: float | None,
) -> None:
    """Put an earlier production version back in production; the server follows without downtime.

    By default: the most recent version that was in production before the current one and that no rollback took
    out of production (rolling back twice goes further back, never to the version just rolled back). If there is
    none, nothing changes and the error asks for --to VERSION."""
    from workflows import release

    name = chosen_model(config_path, model_name).name
    deployment = load_deployment_config(deployment_path)
    outcome = release.rollback(name, to_version, deployment, reason=reason, verbose=settings.verbose)
    release.report_release(outcome, say)
    if wait_served is not None:
        from workflows.follow import wait_served as wait

        wait(outcome.model_name, str(outcome.version), wait_served, say=say)


@click.command()
@config_option("Training config: names the model.")
@model_name_option()
@reports_errors
def history(config_path: str, model_name: str | None) -> None:
    """The model's release timeline: each version's stage changes (when, by whom, which command, why)."""
    from workflows import release
    from workflows.reporting import history_table

    name = chosen_model(config_path, model_name).name
    click.echo(history_table(name, release.history(name)))


@click.command()
@config_option("Training config: names the model.")
@model_name_option()
@click.option("--version", help="Version number (default: the production version, else the newest).")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Write the card as one HTML page here instead."
)
@reports_errors
def card(config_path: str, model_name: str | None, version: str | None, html_path: str | None) -> None:
    """A model version's card: what it predicts, its data and split, metrics (per segment, against the baseline
    and production), the promotion decision, releases, where it is served and its monitoring. Prints Markdown;
    also refreshes reports/models/<model>/v<N>.html and .md."""
    from workflows.model_card import write_card
    from workflows.reporting import shown_path

    name = chosen_model(config_path, model_name).name
    number, written_html, written_md = write_card(name, version)
    if html_path:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        Path(html_path).write_text(written_html.read_text())
        click.echo(f"model card of `{name}` version {number}: {shown_path(html_path)}")
        return
    click.echo(written_md.read_text())
    click.echo(f"(also written to {shown_path(str(written_html))} and {shown_path(str(written_md))})", err=True)


COMMANDS = [train, promote, rollback, history, card]

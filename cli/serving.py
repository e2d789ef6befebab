"""Serving and scoring: `deploy`, `predict`, `status`, `undeploy`, `score`.

Workflows are imported inside the commands: importing ZenML takes seconds, and `--help`, `status`, `predict` and
`undeploy` need none of it when the project's serving record knows the servers."""

from __future__ import annotations

import functools
import sys

import click

from cli.options import (
    Settings,
    chosen_model,
    config_option,
    deployment_config_option,
    explicit,
    model_name_option,
    on_stack,
    pass_settings,
    say,
    serving_target,
    spark_config_option,
)
from lifecycle.config import load_deployment_config
from lifecycle.errors import EXIT_NOT_PROMOTED


def _target(config_path: str, model_name: str | None) -> str:
    name = serving_target(config_path, model_name)
    assert name is not None  # without --all, always a model
    return name


@click.command()
@config_option("Training config: names the model to serve.")
@deployment_config_option()
@model_name_option()
@click.option("--port", type=int, help="Preferred port (default: the deployment config's).")
@click.option("--timeout", type=int, help="Seconds for the new server to become healthy (default: the config's).")
@click.option(
    "--canary",
    metavar="VERSION|none",
    help="Serve VERSION beside production behind the front door, with --weight % of the requests (none: end it).",
)
@click.option(
    "--weight", type=float, default=10.0, show_default=True, help="With --canary: its share of requests, in %."
)
@click.option(
    "--shadow",
    metavar="VERSION|none",
    help="Send VERSION a copy of every request; its answers are logged, never returned (none: end it).",
)
@click.option(
    "--judge",
    is_flag=True,
    help=f"Judge the canary against production on live traffic until a verdict (configs/deployment.yaml, "
    f"`canary`), then promote it (exit 0) or end it (exit {EXIT_NOT_PROMOTED}). Without --canary: judge the "
    "running canary (resumes an interrupted judge).",
)
@on_stack
@pass_settings
def deploy(
    settings: Settings,
    config_path: str,
    deployment_path: str,
    model_name: str | None,
    port: int | None,
    timeout: int | None,
    canary: str | None,
    weight: float,
    shadow: str | None,
    judge: bool,
) -> None:
    """Serve the production version with the active stack's deployer (zero-downtime replacement); with --canary
    or --shadow, another version beside it behind the model's front door; with --judge, a canary judged live."""
    if canary and shadow or judge and (shadow or (canary or "").lower() == "none"):
        raise click.UsageError("give --canary or --shadow, one at a time; --judge alone or with --canary VERSION.")
    from workflows.deploying import deploy as serve
    from workflows.deploying import deploy_and_judge

    deployment = load_deployment_config(deployment_path)
    if not judge:
        serve(
            _target(config_path, model_name), deployment, port, timeout, canary, shadow, weight, say, settings.verbose
        )
        return
    config = chosen_model(config_path, model_name).config
    outcome = deploy_and_judge(
        config.model.name, deployment, config.promotion, port, timeout, canary, weight, say, settings.verbose
    )
    sys.exit(0 if outcome.promoted else EXIT_NOT_PROMOTED)


@click.command()
@click.option("--input", "input_path", required=True, help="Rows to predict: CSV, Parquet, or JSON records.")
@click.option("--output", "output_path", help="Write the rows with a `prediction` column to this CSV.")
@config_option("Training config: names the model.")
@deployment_config_option()
@model_name_option()
@on_stack
def predict(
    input_path: str,
    output_path: str | None,
    config_path: str,
    deployment_path: str,
    model_name: str | None,
) -> None:
    """Send rows to the model served on the active stack and print the predictions (and, for a classifier, the
    probability of the positive class)."""
    from workflows.prediction import predict_file

    model = functools.partial(_target, config_path, model_name)  # asked once the input file is read
    predicted = predict_file(input_path, output_path, deployment_path, model)
    for line in predicted.lines:
        click.echo(line)
    click.echo(predicted.note, err=True)


@click.command()
@config_option("Training config: names the model.")
@deployment_config_option("Serving settings: how long warm standbys are kept (expired ones are stopped).")
@model_name_option()
@click.option("--all", "all_models", is_flag=True, help="Every model's servers (the default without --model-name).")
@on_stack
def status(config_path: str, deployment_path: str, model_name: str | None, all_models: bool) -> None:
    """What is served on the active stack, where, and whether it answers (every model unless --model-name);
    warm standbys are shown with their expiry, and the expired ones stopped."""
    from workflows.serving_status import status_text

    one_model = (model_name or explicit("config_path")) and not all_models
    standby = load_deployment_config(deployment_path).standby
    click.echo(status_text(serving_target(config_path, model_name) if one_model else None, standby))


@click.command()
@config_option("Training config: names the model.")
@model_name_option()
@click.option("--all", "all_models", is_flag=True, help="Stop every model's servers on the active stack.")
@on_stack
def undeploy(config_path: str, model_name: str | None, all_models: bool) -> None:
    """Stop the model's servers on the active stack."""
    from workflows.serving_status import stop_servers

    for line in stop_servers(serving_target(config_path, model_name, all_models)):
        click.echo(line)


@click.command()
@click.option("--input", "input_path", required=True, help="Rows to score: CSV or Parquet (spark: a folder too).")
@click.option(
    "--output", "output_path", required=True, help="Predictions to write: .parquet or .csv (spark: a Parquet folder)."
)
@click.option("--version", help="Model version number (default: the production version).")
@click.option(
    "--engine",
    type=click.Choice(["pandas", "spark"]),
    help="pandas: in this process; spark: on the Spark cluster (default: configs/spark.yaml, per stack).",
)
@config_option("Training config: names the model.")
@model_name_option()
@deployment_config_option("Serving settings: where the prediction log is.")
@spark_config_option()
@on_stack
@pass_settings
def score(
    settings: Settings,
    input_path: str,
    output_path: str,
    version: str | None,
    engine: str | None,
    config_path: str,
    model_name: str | None,
    deployment_path: str,
    spark_path: str,
) -> None:
    """Batch scoring without a server: a pipeline run on the active stack scores the file; each row gets a
    request id, goes to the prediction log (backend `batch`) and to the output. `--engine spark` scores on a
    Spark cluster (`python run.py spark up`), partition by partition."""
    from workflows.scoring import chosen_engine, score_file, score_on_spark

    model = functools.partial(_target, config_path, model_name)  # asked once the files are known to be usable
    if chosen_engine(engine, spark_path) == "spark":
        lines = score_on_spark(input_path, output_path, version, deployment_path, spark_path, model, settings.verbose)
    else:
        lines = score_file(input_path, output_path, version, deployment_path, model, settings.verbose)
    for line in lines:
        click.echo(line)


@click.command()
@click.option(
    "--follow",
    is_flag=True,
    help="Keep serving the version the ZenML store names production; roll out each change within seconds.",
)
@config_option("Training config: names the model to serve.")
@deployment_config_option("Serving settings: front door, standby, and `follow.poll_seconds`.")
@model_name_option()
@on_stack
@pass_settings
def serve(settings: Settings, follow: bool, config_path: str, deployment_path: str, model_name: str | None) -> None:
    """On the serving machine: follow production in the (shared) ZenML store and keep it answering behind the
    model's front door, whichever machine promotes or rolls back. Runs until stopped (the servers stay up)."""
    if not follow:
        raise click.UsageError("serve runs as a follower: give --follow (to serve once, `deploy`).")
    from workflows.follow import follow as run_follower

    deployment = load_deployment_config(deployment_path)
    run_follower(_target(config_path, model_name), deployment, say=say, verbose=settings.verbose)


COMMANDS = [deploy, predict, status, undeploy, score, serve]

#!/usr/bin/env python
"""mlops-lifecycle command line: `python run.py` runs the whole lifecycle available on the active stack."""

from __future__ import annotations

import sys

import click

from lifecycle.environment import configure_environment

configure_environment()

from lifecycle.config import DEFAULT_CONFIG, apply_overrides, load_config  # noqa: E402
from lifecycle.errors import LifecycleError  # noqa: E402
from lifecycle.validation import validate_file  # noqa: E402


def fail(error: Exception) -> None:
    click.secho(f"error: {error}", fg="red", err=True)
    sys.exit(2)


@click.group(invoke_without_command=True)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Train, evaluate, register and promote a tabular model with ZenML (`train` is the default)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(train)


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=str(DEFAULT_CONFIG),
    show_default=True,
    help="YAML file describing dataset, model and promotion policy.",
)
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
@click.option("--model-name", help="Model Control Plane name (default: from the config, or the data file name).")
@click.option("--seed", type=int, help="Random seed (default: from the config).")
@click.option("--no-cache", is_flag=True, help="Re-run every step instead of reusing cached results.")
def train(
    config_path: str,
    data: str | None,
    target: str | None,
    task: str | None,
    time_columns: tuple[str, ...],
    segment_columns: tuple[str, ...],
    model_name: str | None,
    seed: int | None,
    no_cache: bool,
) -> None:
    """Train, evaluate, register and (if it beats production) promote a model."""
    try:
        config = apply_overrides(
            load_config(config_path),
            data=data,
            target=target,
            task=task,
            time_columns=list(time_columns),
            segment_columns=list(segment_columns),
            model_name=model_name,
            seed=seed,
            enable_cache=False if no_cache else None,
        )
        validate_file(config.dataset)  # bad data fails here, before any pipeline run is recorded
        from pipelines.runner import run_training

        outcome = run_training(config)
    except LifecycleError as error:
        fail(error)
    from lifecycle.reporting import training_summary

    click.echo(training_summary(outcome))


if __name__ == "__main__":
    cli()

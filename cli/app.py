"""The `cli` group: `--verbose`, the commands, and what runs without a command (train, then deploy)."""

from __future__ import annotations

import sys

import click

from cli import monitoring, project, serving, training
from cli.options import Settings, fail
from lifecycle.errors import LifecycleError

# Commands that do not use the ZenML store (they start or stop its servers).
WITHOUT_STORE = {"team", "cluster"}


@click.group(invoke_without_command=True)
@click.option("--verbose", is_flag=True, help="Show ZenML's whole log (by default: one line per finished step).")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Train, evaluate, register and promote a tabular model, then serve production (the default: train + deploy)."""
    ctx.obj = Settings(verbose=verbose)
    if not verbose:
        from workflows.console import quiet_mlflow

        quiet_mlflow()
    if ctx.invoked_subcommand not in WITHOUT_STORE and "--help" not in sys.argv[1:]:
        from stacks.remote_store import check_server_answers

        try:
            check_server_answers()
        except LifecycleError as error:
            fail(error)
    if ctx.invoked_subcommand is None:
        ctx.invoke(training.train, redeploy=False)  # the deploy below serves production, whether or not it changed
        ctx.invoke(serving.deploy)


for module in (training, monitoring, serving, project):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli()

#!/usr/bin/env python
"""mlops-lifecycle command line: `python run.py` runs the whole lifecycle available on the active stack."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lifecycle.environment import configure_environment

configure_environment()

from click.core import ParameterSource  # noqa: E402

from lifecycle.config import (  # noqa: E402
    DEFAULT_COMPARISON_CONFIG,
    DEFAULT_CONFIG,
    DEFAULT_DEPLOYMENT_CONFIG,
    DEFAULT_MONITORING_CONFIG,
    RunConfig,
    apply_overrides,
    load_config,
    load_deployment_config,
    load_monitoring_config,
)
from lifecycle.errors import EXIT_INVALID, EXIT_NOT_PROMOTED, ConfigError, LifecycleError  # noqa: E402
from lifecycle.names import check_model_name  # noqa: E402
from lifecycle.validation import validate_file  # noqa: E402


def fail(error: Exception) -> None:
    click.secho(f"error: {error}", fg="red", err=True)
    sys.exit(getattr(error, "exit_code", EXIT_INVALID))


def config_option(help_text: str):
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=str(DEFAULT_CONFIG),
        show_default=True,
        help=help_text,
    )


def monitoring_config_option(help_text: str):
    return click.option(
        "--monitoring-config",
        "monitoring_path",
        type=click.Path(dir_okay=False),
        default=str(DEFAULT_MONITORING_CONFIG),
        show_default=True,
        help=help_text,
    )


def deployment_config_option(help_text: str = "Serving settings: host, port, timeouts, request limits."):
    return click.option(
        "--deployment-config",
        "deployment_path",
        type=click.Path(dir_okay=False),
        default=str(DEFAULT_DEPLOYMENT_CONFIG),
        show_default=True,
        help=help_text,
    )


def checked_model_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """`--model-name` follows the model-name rule before any command uses it."""
    try:
        return None if value is None else check_model_name(value)
    except ConfigError as error:
        raise click.BadParameter(str(error)) from None


model_name_option = click.option(
    "--model-name", callback=checked_model_name, help="Model Control Plane name (default: the training config's)."
)

stack_option = click.option(
    "--stack", "stack_name", help="Activate this registered ZenML stack first (like `zenml stack set`)."
)


def summary_options(command: Callable[..., None]) -> Callable[..., None]:
    """--summary-md / --summary-json: the command's result for CI (a job summary, a pull-request comment)."""
    command = click.option("--summary-json", type=click.Path(dir_okay=False), help="Write the result as JSON here.")(
        command
    )
    return click.option(
        "--summary-md", type=click.Path(dir_okay=False), help="Write the result as Markdown here (CI job summary)."
    )(command)


def write_summaries(record: dict, markdown: str, summary_md: str | None, summary_json: str | None) -> None:
    import json

    if summary_md:
        Path(summary_md).parent.mkdir(parents=True, exist_ok=True)
        with open(summary_md, "a") as out:  # appended: GITHUB_STEP_SUMMARY collects several steps
            out.write(markdown)
    if summary_json:
        Path(summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(summary_json).write_text(json.dumps(record, indent=2, default=str))


def reports_errors(command: Callable[..., None]) -> Callable[..., None]:
    """A LifecycleError (bad data, config, stack, server) ends the command with its one-line message, exit 2."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except LifecycleError as error:
            fail(error)

    return run


def on_stack(command: Callable[..., None]) -> Callable[..., None]:
    """`reports_errors`, plus a `--stack` option that activates that stack before the command runs."""

    @functools.wraps(command)
    def run(*args: Any, stack_name: str | None = None, **kwargs: Any) -> None:
        if stack_name:
            activate_stack(stack_name)
        command(*args, **kwargs)

    return stack_option(reports_errors(run))


@click.group(invoke_without_command=True)
@click.option("--verbose", is_flag=True, help="Show ZenML's whole log (by default: one line per finished step).")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Train, evaluate, register and promote a tabular model, then serve production (the default: train + deploy)."""
    if verbose:
        import os

        os.environ["MLOPS_VERBOSE"] = "1"
    if ctx.invoked_subcommand is None:
        ctx.invoke(train, redeploy=False)  # the deploy below serves production, whether or not it changed
        ctx.invoke(deploy)


@cli.command()
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
@click.option(
    "--model-name",
    callback=checked_model_name,
    help="Model Control Plane name (default: from the config, or the data file name).",
)
@click.option("--seed", type=int, help="Random seed (default: from the config).")
@click.option("--no-cache", is_flag=True, help="Re-run every step instead of reusing cached results.")
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
    stage: str | None,
    require_promotion: bool,
    redeploy: bool,
    deployment_path: str,
    summary_md: str | None,
    summary_json: str | None,
) -> None:
    """Train, evaluate, register and (if it beats production) promote a model; a promoted model that is served
    on the active stack is redeployed (its front door keeps its address)."""
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
    if stage:
        config = config.model_copy(update={"promotion": config.promotion.model_copy(update={"release_stage": stage})})
    validate_file(config.dataset)  # bad data fails here, before any pipeline run is recorded
    from lifecycle.project_state import remember_training
    from workflows.runner import run_training

    outcome = run_training(config)
    remember_training(config)  # the next commands act on this model unless told otherwise
    from workflows.reporting import training_markdown, training_record, training_summary

    click.echo(training_summary(outcome))
    record = training_record(outcome)
    write_summaries(record, training_markdown(record), summary_md, summary_json)
    if redeploy and outcome.decision.promoted and config.promotion.release_stage == "production":
        from workflows.runner import redeploy_if_serving

        redeployed = redeploy_if_serving(config.model.name, load_deployment_config(deployment_path))
        if redeployed is not None:
            click.echo(redeploy_note(True, redeployed))
            update_model_cards(config.model.name, outcome.model_version, *replaced_versions(redeployed))
    if require_promotion and not outcome.decision.promoted:
        click.secho("not promoted, and --require-promotion was given", fg="red", err=True)
        sys.exit(EXIT_NOT_PROMOTED)


@cli.command()
@config_option("Training config: names the model and its promotion rule.")
@deployment_config_option()
@model_name_option
@click.option("--version", help="Version number to promote (default: the version in staging).")
@click.option("--force", is_flag=True, help="Promote even if the promotion rule says no (needs --reason).")
@click.option("--reason", help="Why: recorded on the version and shown by `run.py history`.")
@click.option("--require-promotion", is_flag=True, help=f"Exit {EXIT_NOT_PROMOTED} when the version is not promoted.")
@summary_options
@on_stack
def promote(
    config_path: str,
    deployment_path: str,
    model_name: str | None,
    version: str | None,
    force: bool,
    reason: str | None,
    require_promotion: bool,
    summary_md: str | None,
    summary_json: str | None,
) -> None:
    """Promote the staging (or named) version to production if it still beats production; the server follows."""
    from workflows import release
    from workflows.reporting import release_markdown, release_record, release_summary

    config = model_in_question(config_path, model_name)
    deployment = load_deployment_config(deployment_path)
    outcome = release.promote(config.model.name, version, config.promotion, deployment, force=force, reason=reason)
    click.echo(release_summary(outcome))
    update_model_cards(config.model.name, outcome.version, outcome.previous, *replaced_versions(outcome.redeployed))
    record = release_record(outcome, "promote")
    write_summaries(record, release_markdown(record), summary_md, summary_json)
    if require_promotion and not outcome.changed:
        sys.exit(EXIT_NOT_PROMOTED)


@cli.command()
@config_option("Training config: names the model.")
@deployment_config_option()
@model_name_option
@click.option(
    "--to",
    "to_version",
    metavar="VERSION",
    help="Version to put back in production (default: the most recent earlier production version that was not "
    "itself rolled back). May name a rolled-back version: the output and the history say so.",
)
@click.option("--reason", help="Why: recorded on both versions and shown by `run.py history`.")
@on_stack
def rollback(
    config_path: str, deployment_path: str, model_name: str | None, to_version: str | None, reason: str | None
) -> None:
    """Put an earlier production version back in production; the server follows without downtime.

    By default: the most recent version that was in production before the current one and that no rollback took
    out of production (rolling back twice goes further back, never to the version just rolled back). If there is
    none, nothing changes and the error asks for --to VERSION."""
    from workflows import release
    from workflows.reporting import release_summary

    name = model_in_question(config_path, model_name).model.name
    outcome = release.rollback(name, to_version, load_deployment_config(deployment_path), reason=reason)
    click.echo(release_summary(outcome))
    update_model_cards(name, outcome.version, outcome.previous, *replaced_versions(outcome.redeployed))


@cli.command()
@config_option("Training config: names the model.")
@model_name_option
@reports_errors
def history(config_path: str, model_name: str | None) -> None:
    """The model's release timeline: each version's stage changes (when, by whom, which command, why)."""
    from workflows import release
    from workflows.reporting import history_table

    name = model_in_question(config_path, model_name).model.name
    click.echo(history_table(name, release.history(name)))


@cli.command()
@config_option("Training config: names the model.")
@model_name_option
@click.option("--version", help="Version number (default: the production version, else the newest).")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Write the card as one HTML page here instead."
)
@reports_errors
def card(config_path: str, model_name: str | None, version: str | None, html_path: str | None) -> None:
    """A model version's card: what it predicts, its data and split, metrics (per segment, against the baseline
    and production), the promotion decision, releases, where it is served and its monitoring. Prints Markdown;
    also refreshes reports/models/<model>/v<N>.html and .md."""
    from workflows.model_card import card_for, write_card_files
    from workflows.release import version_named
    from workflows.reporting import shown_path

    name = model_in_question(config_path, model_name).model.name
    number = version_named(name, version).number if version else default_card_version(name)
    built = card_for(name, number)
    written_html, written_md = write_card_files(built)
    if html_path:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        Path(html_path).write_text(written_html.read_text())
        click.echo(f"model card of `{name}` version {number}: {shown_path(html_path)}")
        return
    click.echo(written_md.read_text())
    click.echo(f"(also written to {shown_path(str(written_html))} and {shown_path(str(written_md))})", err=True)


@cli.command()
@config_option("Training config: names the model whose runs are shown.")
@model_name_option
@click.option("--port", type=int, default=8237, show_default=True, help="Port of ZenML's local server (127.0.0.1).")
@click.option("--stop", is_flag=True, help="Stop the local ZenML server (the commands go back to the local store).")
@reports_errors
def dashboard(config_path: str, model_name: str | None, port: int, stop: bool) -> None:
    """Open ZenML's dashboard on this project: start ZenML's local server (first-run form answered) and print
    the addresses of the model's latest training run, model card, data-quality and drift reports."""
    from workflows import dashboard as zenml_dashboard
    from workflows.runner import reports_folder

    if stop:
        click.echo(zenml_dashboard.stop())
        return
    name = model_in_question(config_path, model_name).model.name
    reports = reports_folder(load_monitoring_config(str(DEFAULT_MONITORING_CONFIG)))
    started = zenml_dashboard.start(name, reports, port)
    click.echo(zenml_dashboard.describe(started))
    if zenml_dashboard.open_runs_page(started):
        click.echo("(opened the project's runs in your browser)")


@cli.command()
@click.argument("action", type=click.Choice(["up", "down"]))
@click.option("--zenml-port", type=int, default=8238, show_default=True, help="Port of the ZenML server (up).")
@click.option("--mlflow-port", type=int, default=5000, show_default=True, help="Port of the MLflow server (up).")
@click.option(
    "--python",
    "python",
    default="",
    help="The environment the servers run in (up), e.g. .venv-cluster/bin/python: a ZenML server that is to "
    "register the cluster stacks needs their integrations (`make cluster-env`).",
)
@reports_errors
def team(action: str, zenml_port: int, mlflow_port: int, python: str) -> None:
    """Start (up) or stop (down) a ZenML server and an MLflow server on 127.0.0.1, to try the shared set-up
    a team uses (their data stays in .state/team/); `up` prints what a client exports to use them."""
    from workflows import team as team_servers

    if action == "down":
        stopped = team_servers.down()
        click.echo("stopped: " + (", ".join(stopped) or "nothing was running"))
        return
    started = team_servers.up(zenml_port=zenml_port, mlflow_port=mlflow_port, python=python)
    click.echo(team_servers.describe(started))


def default_card_version(model_name: str) -> int:
    from lifecycle.errors import LifecycleError
    from workflows.model_card import card_version

    version = card_version(model_name)
    if version is None:
        raise LifecycleError(
            f"model `{model_name}` has no versions. Fix: train it first (`python run.py train`), or pass "
            "--model-name of a model that has some (`zenml model list` lists them)."
        )
    return version.number


@cli.command()
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
@click.option(
    "--model-name",
    callback=checked_model_name,
    help="Model whose production version is monitored (default: the config's).",
)
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
def monitor(
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
    from workflows.reporting import monitoring_summary, training_summary

    if bool(batch_path) == served:
        raise click.UsageError("give either --batch FILE or --served (what the model's servers answered).")
    if batch_path:
        read_table(batch_path, allow_empty=True)  # a bad batch file is named before anything else is said or run
    config = model_in_question(config_path, model_name)
    monitoring = load_monitoring_config(monitoring_path)
    deployment = load_deployment_config(deployment_path)
    from workflows.runner import redeploy_if_serving, retraining_data, run_monitoring, run_training

    if served:
        batch_path = str(served_batch_for(config, since, until, deployment))

    outcome = run_monitoring(config.model.name, batch_path, monitoring, retrain_on_demand=retrain == "always")
    click.echo(monitoring_summary(outcome))
    update_model_cards(config.model.name, outcome.summary.model_version)
    from workflows.reporting import monitoring_markdown, training_markdown, training_record

    record: dict[str, Any] = {"command": "monitor", **outcome.summary.model_dump(mode="json"), "retraining": None}
    markdown = monitoring_markdown(outcome)
    if outcome.summary.decision.retrain and retrain != "never":
        window = monitoring.policy.retrain_window_days
        data, made_of = retraining_data(config, batch_path, window)
        click.echo(f"\nRetraining on {made_of.describe()} ({data}) ...")
        dataset = config.dataset.model_copy(update={"path": str(data)})
        retrained = run_training(config.model_copy(update={"dataset": dataset}))
        click.echo(training_summary(retrained))
        redeployed = redeploy_if_serving(config.model.name, deployment) if retrained.decision.promoted else None
        click.echo(redeploy_note(retrained.decision.promoted, redeployed))
        if redeployed is not None:
            update_model_cards(config.model.name, retrained.model_version, *replaced_versions(redeployed))
        record["retraining"] = training_record(retrained)
        markdown += "\n" + training_markdown(record["retraining"])
    write_summaries(record, markdown, summary_md, summary_json)


@cli.command()
@config_option("Training config: dataset (with time columns), model, promotion.")
@monitoring_config_option("Policy and replay settings.")
@click.option("--periods", type=int, help="Stop after this many periods (default: the config's, else all).")
@click.option("--no-serve", is_flag=True, help="Do not deploy the replay's models (faster).")
@deployment_config_option()
@on_stack
def lifecycle(
    config_path: str,
    monitoring_path: str,
    periods: int | None,
    no_serve: bool,
    deployment_path: str,
) -> None:
    """Walk-forward replay: train on the first weeks, then monitor, retrain and promote period by period."""
    import os

    os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "WARN")  # the timeline is the progress report
    config = load_config(config_path)
    monitoring = load_monitoring_config(monitoring_path)
    changes = {"max_periods": periods} if periods else {}
    if no_serve:
        changes["serve"] = False
    monitoring = monitoring.model_copy(update={"replay": monitoring.replay.model_copy(update=changes)})
    deployment = load_deployment_config(deployment_path)
    from workflows.replay import plot_errors, replay, timeline_table
    from workflows.runner import reports_folder

    result = replay(config, monitoring, progress=lambda line: click.secho(line, fg="cyan"), deployment=deployment)
    folder = reports_folder(monitoring) / "lifecycle"
    result.plot = plot_errors(result, folder / "error_over_time.png")
    table = timeline_table(result)
    (folder / "timeline.md").write_text(table + "\n")
    continuous, static = result.mean_error("error_in_production"), result.mean_error("error_never_retrained")
    click.echo("\n" + table)
    click.echo(
        f"\n{result.metric} over the replay (row-weighted): continuously trained {continuous:.2f}, "
        f"never retrained {static:.2f}: continuous training has {(static - continuous) / static:.0%} lower error"
        if static == static and static
        else ""
    )
    click.echo(
        f"retrained {sum(p.retrained for p in result.periods)} times, promoted "
        f"{sum(p.promoted for p in result.periods)} times, in {result.seconds / 60:.1f} min"
    )
    click.echo(
        f"plot: {result.plot}\ntimeline: {folder / 'timeline.md'}\n"
        f"drift and quality reports: {reports_folder(monitoring) / 'monitoring' / result.model_name}"
    )
    if result.endpoint:
        click.echo(
            f"still serving `{result.model_name}` at {result.endpoint}; "
            f"stop it with: python run.py undeploy --model-name {result.model_name}"
        )


def served_batch_for(config: RunConfig, since: str | None, until: str | None, deployment) -> str:
    """What the model's servers answered, written as a monitoring batch; says what it holds, per version."""
    from workflows.served import served_batch

    batch = served_batch(config, since, until, deployment)
    click.echo(
        f"served rows of `{config.model.name}` ({since or 'all'} .. {until or 'now'}): {batch.rows}, of which "
        f"{batch.labelled} labelled; batch written to {batch.path}\n{batch.table()}\n"
    )
    return str(batch.path)


def redeploy_note(promoted: bool, redeployed: dict | None) -> str:
    if not promoted:
        return "Production unchanged; the server (if any) keeps serving it."
    if redeployed is None:
        return (
            "A new version is in production; batch monitoring uses it from now on. Nothing serves this model on "
            "the active stack: `python run.py deploy` starts a server."
        )
    door = redeployed.get("front_door_url")
    return (
        f"A new version is in production and now served: version {redeployed['model_version']} at "
        f"{redeployed['predict_url']} replaced {', '.join(redeployed['replaced']) or 'nothing'}"
        + (f"; the front door {door} answers with it." if door else ".")
    )


def explicit(parameter: str) -> bool:
    """Whether the user gave this option (not its default; `make run` invokes commands with their defaults)."""
    source = click.get_current_context().get_parameter_source(parameter)
    return source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def model_in_question(config_path: str, model_name: str | None) -> RunConfig:
    """The model a command acts on, said on its first line (stderr): `--model-name`, else the model of an explicit
    `--config`, else the model most recently trained in this project, else the default config's. Its configuration
    is the one it was last trained with here when known (so `monitor` retrains it on its own data)."""
    from lifecycle.project_state import current_model, remembered_config

    explicit_config = explicit("config_path")
    if model_name:
        why = "--model-name"
    elif explicit_config:
        model_name, why = load_config(config_path).model.name, f"named by {config_path}"
    elif current_model():
        model_name, why = current_model(), "the model most recently trained here; --model-name picks another"
    else:
        model_name, why = load_config(config_path).model.name, f"named by {config_path}; --model-name picks another"
    click.echo(f"model `{model_name}` ({why})", err=True)
    remembered = None if explicit_config else remembered_config(model_name)
    return remembered or apply_overrides(load_config(config_path), model_name=model_name)


def replaced_versions(deployment_record: dict | None) -> list[str]:
    """The versions whose servers a deployment stopped (their cards no longer list them as served)."""
    from serving.backends.base import parse_server_name

    names = (deployment_record or {}).get("replaced") or []
    return [parsed[1] for parsed in map(parse_server_name, names) if parsed]


def update_model_cards(model_name: str, *versions: Any) -> None:
    """Rebuild the cards of the versions a command changed, and say where they are."""
    from workflows.model_card import refresh_cards_quietly
    from workflows.reporting import shown_path

    written = refresh_cards_quietly(model_name, list(versions))
    if written:
        click.echo("model card: " + ", ".join(shown_path(str(path)) for path in written))


def serving_target(config_path: str, model_name: str | None, all_models: bool = False) -> str | None:
    """For the serving commands: the model meant (None: every model)."""
    return None if all_models else model_in_question(config_path, model_name).model.name


@cli.command()
@config_option("Training config: names the model to serve.")
@deployment_config_option()
@model_name_option
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
@on_stack
def deploy(
    config_path: str,
    deployment_path: str,
    model_name: str | None,
    port: int | None,
    timeout: int | None,
    canary: str | None,
    weight: float,
    shadow: str | None,
) -> None:
    """Serve the production version with the active stack's deployer (zero-downtime replacement); with --canary
    or --shadow, another version beside it behind the model's front door."""
    from workflows.reporting import deployment_summary, trial_ended_summary

    if canary and shadow:
        raise click.UsageError("give --canary or --shadow, one at a time.")
    name = serving_target(config_path, model_name)
    from workflows.runner import end_serving_trial, run_deployment

    settings = load_deployment_config(deployment_path)
    role, version = ("canary", canary) if canary else ("shadow", shadow) if shadow else ("production", None)
    if version is not None and version.lower() == "none":
        stopped = end_serving_trial(name, role, settings)
        click.echo(trial_ended_summary(name, role, stopped))
        update_model_cards(name, *(e.model_version for e in stopped))
        return
    record = run_deployment(
        name, settings, port=port, timeout=timeout, role=role, version=version, weight=weight if canary else None
    )
    click.echo(deployment_summary(name, record))
    update_model_cards(name, record.get("model_version"), *replaced_versions(record))


@cli.command()
@click.option("--input", "input_path", required=True, help="Rows to predict: CSV, Parquet, or JSON records.")
@click.option("--output", "output_path", help="Write the rows with a `prediction` column to this CSV.")
@config_option("Training config: names the model.")
@deployment_config_option()
@model_name_option
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
    from serving.client import read_request_rows
    from serving.served import served_on_active_stack

    records = read_request_rows(input_path)  # a bad input file is named before any server is looked for
    name = serving_target(config_path, model_name)
    settings = load_deployment_config(deployment_path)
    served = served_on_active_stack()
    endpoint = served.live(name)
    if endpoint is None:
        raise LifecycleError(
            f"`python run.py predict`: no healthy {served.backend_name} server is serving `{name}` on stack "
            f"`{served.stack}`. Fix: `python run.py deploy --model-name {name}` (`python run.py status` shows "
            "what serves here)."
        )
    answer = served.backend.predict_all(endpoint, records, settings.max_rows_per_request)
    if output_path:
        import pandas as pd

        table = pd.DataFrame(records).assign(prediction=answer.predictions)
        if answer.probabilities is not None:
            table["probability"] = answer.probabilities
        table.to_csv(output_path, index=False)
        click.echo(f"{len(answer.predictions)} predictions written to {output_path}")
    elif answer.probabilities is not None:
        for value, probability in zip(answer.predictions, answer.probabilities, strict=True):
            click.echo(f"{value}\t{probability:.4f}")
    else:
        for value in answer.predictions:
            click.echo(value)
    click.echo(
        f"`{name}` version {answer.model_version} served by {served.backend_name} at {endpoint.predict_url}: "
        f"{len(answer.predictions)} rows; request id {', '.join(answer.request_ids) or 'not returned'} "
        "(`python run.py trace ID`)"
        + (
            "; second column: probability of the positive class"
            if answer.probabilities is not None and not output_path
            else ""
        ),
        err=True,
    )


@cli.command()
@config_option("Training config: names the model.")
@model_name_option
@click.option("--all", "all_models", is_flag=True, help="Every model's servers (the default without --model-name).")
@on_stack
def status(config_path: str, model_name: str | None, all_models: bool) -> None:
    """What is served on the active stack, where, and whether it answers (every model unless --model-name)."""
    from serving.client import is_healthy
    from serving.served import served_on_active_stack
    from workflows.reporting import status_table

    explicit_config = explicit("config_path")
    name = serving_target(config_path, model_name) if (model_name or explicit_config) and not all_models else None
    served = served_on_active_stack()
    endpoints = served.of(name)
    health = {e.name: e.running and is_healthy(e.health_url) for e in endpoints}
    click.echo(status_table(served.stack, served.backend_name, name, endpoints, health))


@cli.command()
@config_option("Training config: names the model.")
@model_name_option
@click.option("--all", "all_models", is_flag=True, help="Stop every model's servers on the active stack.")
@on_stack
def undeploy(config_path: str, model_name: str | None, all_models: bool) -> None:
    """Stop the model's servers on the active stack."""
    from serving.served import served_on_active_stack

    name = serving_target(config_path, model_name, all_models)
    stopped = served_on_active_stack().stop(name)
    for endpoint in stopped:
        click.echo(f"  stopped {endpoint.backend} server {endpoint.name} ({endpoint.url or 'not running'})")
    what = f"`{name}`" if name else "any model"
    click.echo(f"{len(stopped)} server(s) stopped." if stopped else f"Nothing serves {what} on this stack.")


@cli.command()
@click.option("--input", "input_path", required=True, help="Rows to score: CSV or Parquet.")
@click.option("--output", "output_path", required=True, help="Predictions file to write: .parquet or .csv.")
@click.option("--version", help="Model version number (default: the production version).")
@config_option("Training config: names the model.")
@model_name_option
@deployment_config_option("Serving settings: where the prediction log is.")
@on_stack
def score(
    input_path: str,
    output_path: str,
    version: str | None,
    config_path: str,
    model_name: str | None,
    deployment_path: str,
) -> None:
    """Batch scoring without a server: a pipeline run on the active stack scores the file; each row gets a
    request id, goes to the prediction log (backend `batch`) and to the output file."""
    from pathlib import Path

    from lifecycle.data import read_table

    output = Path(output_path)
    if output.suffix.lower() not in (".parquet", ".csv"):
        raise LifecycleError(f"--output {output_path}: write a .parquet or .csv file.")
    table = read_table(input_path)  # a bad input file is named before anything runs
    name = serving_target(config_path, model_name)
    from workflows.runner import run_scoring

    outcome = run_scoring(name, input_path, version, load_deployment_config(deployment_path))
    scored = table.iloc[outcome.scored["row"].to_numpy()].reset_index(drop=True)
    answers = outcome.scored.drop(columns="row").reset_index(drop=True)
    written = pd_concat_columns(answers, scored)
    output.parent.mkdir(parents=True, exist_ok=True)
    written.to_parquet(output, index=False) if output.suffix.lower() == ".parquet" else written.to_csv(
        output, index=False
    )
    click.echo(
        f"`{name}` version {outcome.model_version} scored {len(outcome.scored)} of {len(table)} rows in run "
        f"{outcome.run.name}: {output} (request ids batch-..., in the prediction log)"
    )
    if len(outcome.skipped):
        skipped_path = output.with_name(output.stem + ".skipped.csv")
        outcome.skipped.to_csv(skipped_path, index=False)
        click.echo(f"{len(outcome.skipped)} row(s) skipped (row numbers from 0, and why): {skipped_path}")
        for row, reason in outcome.skipped.head(5).itertuples(index=False):
            click.echo(f"  row {row}: {reason}")


def pd_concat_columns(left, right):
    """Side by side; a column of `right` named like one of `left` keeps `left`'s (the answer wins)."""
    import pandas as pd

    return pd.concat([left, right.drop(columns=[c for c in right.columns if c in left.columns])], axis=1)


@cli.command()
@config_option("Training config: names the model.")
@model_name_option
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
    from workflows.served import export_predictions

    name = serving_target(config_path, model_name, all_models)
    done = export_predictions(name, since, until, output_path, load_deployment_config(deployment_path))
    if done.path:
        click.echo(f"{len(done.table.frame)} rows written to {done.path}")
    elif not done.table.frame.empty:
        shown = ["timestamp", "request_id", "row", "model_version", "backend", "prediction", "label"]
        click.echo(done.table.frame[shown].tail(tail).to_string(index=False))
    click.echo(f"{'every model' if name is None else f'`{name}`'}: {done.summary}")


@cli.command()
@click.option("--file", "truth_path", required=True, help="CSV or Parquet with the labels (ground truth).")
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="Join on this field kept in the log (repeatable; default: request_id, and row when present).",
)
@click.option("--label-column", help="The labels' column (default: the model's target).")
@config_option("Training config: names the model.")
@model_name_option
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
    from workflows.served import attach

    config = model_in_question(config_path, model_name)
    column = label_column or config.dataset.target
    report = attach(config.model.name, truth_path, column, list(keys), load_deployment_config(deployment_path))
    click.echo(f"`{config.model.name}`: {report.describe()}")
    if report.unmatched:
        click.echo(
            f"{report.unmatched} label(s) matched no logged prediction (wrong id or key, or logged before the "
            "retention window); they were not attached."
        )


@cli.command()
@click.argument("request_id")
@model_name_option
@deployment_config_option("Serving settings: where the prediction log is.")
@reports_errors
def trace(request_id: str, model_name: str | None, deployment_path: str) -> None:
    """One served prediction back to its model version, training run, data fingerprint, commit and deployment."""
    from workflows.served import trace as trace_request

    click.echo(trace_request(request_id, model_name, load_deployment_config(deployment_path)).text())


@cli.command()
@click.option("--stacks", "stack_names", help="Comma-separated stack files to compare (default: the config's).")
@click.option("--quick", is_flag=True, help="Small data and few requests (the `quick` size of the config).")
@config_option("Training config: the dataset, model and seed every stack trains with.")
@click.option("--data", help="CSV or Parquet file to compare on (replaces the config's dataset).")
@click.option("--target", help="Column to predict (with --data).")
@click.option(
    "--comparison-config",
    "comparison_path",
    type=click.Path(dir_okay=False),
    default=str(DEFAULT_COMPARISON_CONFIG),
    show_default=True,
    help="Stacks, data size, serving load.",
)
@click.option("--workspace", help="The comparison's own store and state (default: <state folder>/compare; replaced).")
@click.option("--output", "output_dir", help="Folder for comparison.md/.html/.json (default: reports/).")
@summary_options
@reports_errors
def compare(
    stack_names: str | None,
    quick: bool,
    config_path: str,
    data: str | None,
    target: str | None,
    comparison_path: str,
    workspace: str | None,
    output_dir: str | None,
    summary_md: str | None,
    summary_json: str | None,
) -> None:
    """Run the same training, monitoring and serving on each stack and write a side-by-side report."""
    import time
    from pathlib import Path

    from lifecycle.config import load_comparison_config

    started = time.monotonic()

    from workflows.console import progress_bar

    reached: list[str] = []

    def progress(where: str, what: str) -> None:
        """`[mm:ss] [███░░░] k/n stack: stage`, k the stacks started so far (then the baselines)."""
        elapsed = int(time.monotonic() - started)
        if where in names and where not in reached:
            reached.append(where)
        bar = progress_bar(len(reached), len(names))
        click.secho(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {bar} {where}: {what}", fg="cyan", err=True)

    comparison = load_comparison_config(comparison_path)
    config = apply_overrides(load_config(config_path), data=data, target=target)
    validate_file(config.dataset)
    from lifecycle.environment import state_dir

    try:
        from measurement.comparison import compare as run_comparison
    except ModuleNotFoundError:
        raise click.UsageError(
            "this project was generated without the backend comparison (copier.yml `benchmarks_and_comparison`). "
            "Fix: `copier update --trust --data benchmarks_and_comparison=true`."
        ) from None
    from workflows.runner import reports_folder

    names = [n.strip() for n in stack_names.split(",") if n.strip()] if stack_names else comparison.stacks
    paths = run_comparison(
        names,
        config,
        comparison,
        quick=quick,
        workspace_root=Path(workspace) if workspace else state_dir() / "compare",
        output_dir=Path(output_dir) if output_dir else reports_folder(load_monitoring_config()),
        progress=progress,
    )
    click.echo((paths["markdown"]).read_text())
    click.echo(f"report: {paths['markdown']}\npage (opens offline): {paths['html']}\nmeasurements: {paths['json']}")
    import json

    write_summaries(json.loads(paths["json"].read_text()), paths["markdown"].read_text(), summary_md, summary_json)


def activate_stack(name: str) -> None:
    """Make `name` the active stack. ZenML rewrites its configuration file in place to do so, and a process reading
    that file at the same moment (another command starting) fails: the lock keeps our own commands apart, and the
    file is left alone when the stack is already active."""
    from zenml.client import Client

    from lifecycle.environment import file_lock, state_dir
    from lifecycle.errors import StackError

    try:
        with file_lock(state_dir() / "locks" / "zenml-config.lock"):
            client = Client()
            stack = client.get_stack(name, allow_name_prefix_match=False)
            if client.active_stack_model.id != stack.id:
                client.activate_stack(stack.id)
    except KeyError as exc:
        raise StackError(
            f"stack `{name}` is not registered. Fix: `python run.py stacks up {name}` "
            "(stacks are defined in stacks/*.yaml), then run again."
        ) from exc


@cli.group()
def stacks() -> None:
    """Register, list and remove the stacks defined in stacks/*.yaml."""


@stacks.command("up")
@click.argument("names", nargs=-1)
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A stack file outside stacks/ (e.g. stacks/examples/kubernetes.yaml).",
)
@reports_errors
def stacks_up_command(names: tuple[str, ...], files: tuple[str, ...]) -> None:
    """Register stacks idempotently (default: every stack file not marked `default: false`)."""
    from pathlib import Path

    from stacks.manage import load_stack_file, select, stack_specs, stacks_up

    extra = [load_stack_file(Path(f)) for f in files]
    specs = stack_specs(include_examples=True)
    chosen = extra + (select(list(names), specs, for_registration=True) if names or not extra else [])
    changes = stacks_up(chosen)
    for change in changes:
        click.echo(f"  {change}")
    click.echo(
        f"{', '.join(s.name for s in chosen)}: "
        + (f"{len(changes)} change(s)." if changes else "already registered, no changes.")
    )
    click.echo("Switch with `zenml stack set NAME`; see them with `python run.py stacks list`.")


@stacks.command("list")
@reports_errors
def stacks_list_command() -> None:
    """Each stack file: registered? active? what it offers."""
    from lifecycle.environment import bentoml_home
    from stacks.capabilities import StackCapabilities
    from stacks.manage import stack_specs, stack_statuses

    statuses = stack_statuses(list(stack_specs(include_examples=True).values()))
    from zenml.client import Client

    click.echo(f"active stack: {Client().active_stack_model.name}")
    for status in statuses:
        spec = status.spec
        capabilities = StackCapabilities(spec.name, dict(spec.components))
        state = ("active" if status.active else "registered") if status.registered else "not registered"
        where = f"examples/{spec.file.name}" if spec.example else spec.file.name
        click.echo(f"{'*' if status.active else ' '} {spec.name:<14} {state:<15} {where}")
        click.echo(f"    {spec.description}")
        for role, what in capabilities.offers().items():
            click.echo(f"    {role:<18} {what}")
        uri = capabilities.tracking_uri
        if uri:
            click.echo(
                f"    MLflow UI:         mlflow ui --backend-store-uri {uri}"
                if uri.startswith("sqlite")
                else f"    MLflow UI:         {uri}"
            )
        if capabilities.get("model_deployer") and capabilities.get("model_deployer").flavor.startswith("bentoml"):
            home, whose = bentoml_home()
            click.echo(f"    BentoML home:      {home} ({whose})")
        for problem in status.drift:
            click.echo(f"    drift: {problem} (run `python run.py stacks up {spec.name}`)")
        if spec.unresolved:
            click.echo(f"    needs environment: {', '.join(spec.unresolved)}")
        if spec.integrations:
            from stacks.capabilities import integrations_installed

            missing = [name for name in spec.integrations if not integrations_installed(name)]
            click.echo(
                f"    integrations:      {', '.join(spec.integrations)}"
                + (f" (not installed here: {', '.join(missing)}; `make cluster-env`)" if missing else " (installed)")
            )
        for need in spec.needs:
            click.echo(f"    to run it needs:   {need}")
        if spec.example and not status.registered:
            click.echo(f"    register:          python run.py stacks up {spec.name}")


@stacks.command("down")
@click.argument("names", nargs=-1)
@reports_errors
def stacks_down_command(names: tuple[str, ...]) -> None:
    """Stop the stacks' model servers, then remove the stacks and their own components."""
    from stacks.manage import select, stack_specs, stacks_down

    chosen = select(list(names), stack_specs(include_examples=True))
    chosen = [spec for spec in chosen if spec.name != "local" or names]
    changes = stacks_down(chosen)
    for change in changes:
        click.echo(f"  {change}")
    click.echo("Nothing to remove." if not changes else "Done.")


if __name__ == "__main__":
    cli()

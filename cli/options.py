"""What the commands share: their options, error reporting, `--stack`, the `--verbose` setting, the model a
command acts on (said on stderr) and the CI summary files."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from click.core import ParameterSource

from lifecycle.config import (
    DEFAULT_CONFIG,
    DEFAULT_DEPLOYMENT_CONFIG,
    DEFAULT_MONITORING_CONFIG,
    DEFAULT_REMOTE_CONFIG,
    DEFAULT_SPARK_CONFIG,
)
from lifecycle.errors import EXIT_INVALID, ConfigError, LifecycleError
from lifecycle.names import check_model_name
from workflows import model_choice
from workflows.model_choice import ModelChoice

Command = TypeVar("Command", bound=Callable[..., Any])


@dataclass
class Settings:
    """The group's options, handed to every command through click's context object."""

    verbose: bool = False  # ZenML's whole log instead of one line per finished step


pass_settings = click.make_pass_decorator(Settings, ensure=True)


def fail(error: Exception) -> NoReturn:
    click.secho(f"error: {error}", fg="red", err=True)
    sys.exit(getattr(error, "exit_code", EXIT_INVALID))


def _config_file_option(flag: str, name: str, default: Path, help_text: str) -> Callable[[Command], Command]:
    """A YAML config file option, with the project's file as its shown default."""
    return click.option(
        flag, name, type=click.Path(dir_okay=False), default=str(default), show_default=True, help=help_text
    )


def config_option(help_text: str) -> Callable[[Command], Command]:
    return _config_file_option("--config", "config_path", DEFAULT_CONFIG, help_text)


def monitoring_config_option(help_text: str) -> Callable[[Command], Command]:
    return _config_file_option("--monitoring-config", "monitoring_path", DEFAULT_MONITORING_CONFIG, help_text)


def deployment_config_option(
    help_text: str = "Serving settings: host, port, timeouts, request limits.",
) -> Callable[[Command], Command]:
    return _config_file_option("--deployment-config", "deployment_path", DEFAULT_DEPLOYMENT_CONFIG, help_text)


def spark_config_option(
    help_text: str = "Spark settings: the cluster, the engine per stack (configs/spark.yaml).",
) -> Callable[[Command], Command]:
    return _config_file_option("--spark-config", "spark_path", DEFAULT_SPARK_CONFIG, help_text)


def remote_config_option(
    help_text: str = "The remote set-up: ports, folders, the image's base (configs/remote.yaml).",
) -> Callable[[Command], Command]:
    return _config_file_option("--remote-config", "remote_path", DEFAULT_REMOTE_CONFIG, help_text)


def checked_model_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """`--model-name` follows the model-name rule before any command uses it."""
    try:
        return None if value is None else check_model_name(value)
    except ConfigError as error:
        raise click.BadParameter(str(error)) from None


def model_name_option(
    help_text: str = "Model Control Plane name (default: the training config's).",
) -> Callable[[Command], Command]:
    return click.option("--model-name", callback=checked_model_name, help=help_text)


stack_option = click.option(
    "--stack", "stack_name", help="Activate this registered ZenML stack first (like `zenml stack set`)."
)


def summary_options(command: Command) -> Command:
    """--summary-md / --summary-json: the command's result for CI (a job summary, a pull-request comment)."""
    command = click.option("--summary-json", type=click.Path(dir_okay=False), help="Write the result as JSON here.")(
        command
    )
    return click.option(
        "--summary-md", type=click.Path(dir_okay=False), help="Write the result as Markdown here (CI job summary)."
    )(command)


def write_summaries(record: dict[str, Any], markdown: str, summary_md: str | None, summary_json: str | None) -> None:
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
            from stacks.activation import activate_stack  # imports ZenML: only when a stack is named

            activate_stack(stack_name)
        command(*args, **kwargs)

    return stack_option(reports_errors(run))


def explicit(parameter: str) -> bool:
    """Whether the user gave this option (not its default; `make run` invokes commands with their defaults)."""
    source = click.get_current_context().get_parameter_source(parameter)
    return source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def chosen_model(config_path: str, model_name: str | None) -> ModelChoice:
    """The model the command acts on (`workflows.model_choice`), said on its first line (stderr)."""
    choice = model_choice.model_in_question(config_path, model_name, explicit("config_path"))
    click.echo(choice.line(), err=True)
    return choice


def serving_target(config_path: str, model_name: str | None, all_models: bool = False) -> str | None:
    """For the serving commands: the model meant (None: every model), said on the first line (stderr)."""
    choice = model_choice.serving_target(config_path, model_name, explicit("config_path"), all_models)
    if choice is None:
        return None
    click.echo(choice.line(), err=True)
    return choice.name


def say(line: str) -> None:
    click.echo(line)

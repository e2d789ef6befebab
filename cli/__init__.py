"""mlops-lifecycle command line (`python run.py`, or `mlops-lifecycle` once installed): click commands that parse
their options, call one workflow and print its result. ZenML's environment is set before anything imports ZenML."""

from lifecycle.environment import configure_environment

configure_environment()

from cli.app import cli, main  # noqa: E402

__all__ = ["cli", "main"]

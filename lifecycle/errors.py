"""Errors a user can act on: each message names the problem, where it is, and the fix."""

# `run.py` exit codes, for CI: 0 = the command did its work (whatever a promotion decided).
EXIT_INVALID = 2  # the data, a config file, an option or a named version is wrong: fix the input
EXIT_UNAVAILABLE = 3  # a stack, server or pipeline run could not do its part: fix the infrastructure, retry
EXIT_NOT_PROMOTED = 4  # with --require-promotion: the candidate did not beat production
EXIT_NOT_SERVED = 5  # with --wait-served: no `serve --follow` reported the new production version in time


class LifecycleError(Exception):
    """Base class: `run.py` prints these as one paragraph, without a traceback."""

    exit_code = EXIT_INVALID


class ConfigError(LifecycleError):
    """A config file or command-line option is wrong."""


class DataError(LifecycleError):
    """A data file cannot be read or breaks the expected schema."""


class PipelineFailed(LifecycleError):
    """A pipeline run failed in one of its steps."""

    exit_code = EXIT_UNAVAILABLE


class StackError(LifecycleError):
    """A stack file, registration, or the active stack cannot be used as asked."""

    exit_code = EXIT_UNAVAILABLE

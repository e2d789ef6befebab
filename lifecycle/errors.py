"""Errors a user can act on: each message names the problem, where it is, and the fix."""


class LifecycleError(Exception):
    """Base class: `run.py` prints these as one paragraph, without a traceback."""


class ConfigError(LifecycleError):
    """A config file or command-line option is wrong."""


class DataError(LifecycleError):
    """A data file cannot be read or breaks the expected schema."""


class PipelineFailed(LifecycleError):
    """A pipeline run failed in one of its steps."""


class StackError(LifecycleError):
    """A stack file, registration, or the active stack cannot be used as asked."""

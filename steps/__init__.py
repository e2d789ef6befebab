"""ZenML steps: small typed wrappers around the plain functions in lifecycle/."""

from lifecycle.atomic_config import make_zenml_config_writes_atomic

make_zenml_config_writes_atomic()  # before ZenML starts a client: its configuration is shared between processes

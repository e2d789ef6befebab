"""ZenML pipelines built from the steps in steps/."""

from lifecycle.atomic_config import make_zenml_config_writes_atomic

make_zenml_config_writes_atomic()  # before ZenML starts a client: its configuration is shared between processes

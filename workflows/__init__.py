"""What a command does, in ZenML terms: run pipelines on the active stack and collect what they decided."""

from lifecycle.atomic_config import make_zenml_config_writes_atomic

make_zenml_config_writes_atomic()  # before ZenML starts a client: its configuration is shared between processes

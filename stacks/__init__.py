"""ZenML stack definitions and the code that registers, checks and compiles them."""

from lifecycle.atomic_config import make_zenml_config_writes_atomic

make_zenml_config_writes_atomic()  # before ZenML starts a client: its configuration is shared between processes

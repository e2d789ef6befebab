"""What the active stack offers, decided once per run, in one place.

Steps and pipelines never look up flavours themselves: the runner asks `active_capabilities()` which steps
need the experiment tracker, and a step asks `mlflow_tracking_enabled()` / `mlflow_registry()` whether to
mirror its work to MLflow. Nothing here runs at import time, so a stack without a tracker imports fine.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifecycle.errors import StackError

# Steps that log to the experiment tracker when the stack has one (one uncached step mirrors the run).
TRACKED_STEPS = ("register_model",)
# Orchestrators that run each step in a container built from the project (configs/containers.yaml applies).
CONTAINER_ORCHESTRATORS = ("local_docker", "ssh")


@dataclass(frozen=True)
class Component:
    name: str
    flavor: str
    configuration: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StackCapabilities:
    stack: str
    components: dict[str, Component]
    stack_id: str = ""

    def get(self, kind: str) -> Component | None:
        return self.components.get(kind)

    @property
    def experiment_tracker(self) -> Component | None:
        return self.get("experiment_tracker")

    @property
    def model_registry(self) -> Component | None:
        return self.get("model_registry")

    @property
    def mlflow_tracker(self) -> Component | None:
        """The experiment tracker, when it is MLflow's."""
        tracker = self.experiment_tracker
        return tracker if tracker is not None and tracker.flavor == "mlflow" else None

    @property
    def mlflow_tracking(self) -> bool:
        return self.mlflow_tracker is not None

    @property
    def mlflow_registry(self) -> bool:
        return self.model_registry is not None and self.model_registry.flavor == "mlflow"

    @property
    def tracking_uri(self) -> str | None:
        tracker = self.mlflow_tracker
        return tracker.configuration.get("tracking_uri") if tracker is not None else None

    def offers(self) -> dict[str, str]:
        """Human-readable: what this stack gives a user, by role."""
        roles = {
            "experiment_tracker": "tracker",
            "model_registry": "registry",
            "model_deployer": "model deployer",
            "deployer": "pipeline deployer",
            "data_validator": "validator",
        }
        offered = {label: f"{c.flavor} ({c.name})" for kind, label in roles.items() if (c := self.get(kind))}
        # Where a stack runs pipelines and keeps artifacts is worth saying only when it is not this machine.
        remote_roles = {
            "orchestrator": "orchestrator",
            "artifact_store": "artifact store",
            "container_registry": "container registry",
            "image_builder": "image builder",
        }
        orchestrator = self.get("orchestrator")
        remote = orchestrator is not None and orchestrator.flavor != "local"
        if remote:
            offered.update(
                {label: f"{c.flavor} ({c.name})" for kind, label in remote_roles.items() if (c := self.get(kind))}
            )
        return offered

    @property
    def runs_in_containers(self) -> bool:
        orchestrator = self.get("orchestrator")
        return orchestrator is not None and orchestrator.flavor in CONTAINER_ORCHESTRATORS

    def step_options(self) -> dict[str, dict[str, Any]]:
        """Per-step options for `pipeline.with_options(steps=...)`: the tracker where the stack has one."""
        if self.experiment_tracker is None:
            return {}
        return {step: {"experiment_tracker": self.experiment_tracker.name} for step in TRACKED_STEPS}


def capabilities_of(stack_model) -> StackCapabilities:
    components = {
        kind.value: Component(c.name, c.flavor_name, dict(c.configuration or {}))
        for kind, items in stack_model.components.items()
        for c in items[:1]
    }
    return StackCapabilities(stack=stack_model.name, components=components, stack_id=str(stack_model.id))


def active_capabilities() -> StackCapabilities:
    from zenml.client import Client

    return capabilities_of(Client().active_stack_model)


def integration_of(flavor: str, kind: str) -> str | None:
    """The ZenML integration that provides a flavor (None for ZenML's built-in flavors)."""
    from zenml.integrations.registry import integration_registry

    for name, integration in integration_registry.integrations.items():
        for flavor_class in integration.flavors():
            candidate = flavor_class()
            if candidate.name == flavor and candidate.type.value == kind:
                return name
    return None


# Installed in the cluster environment only (`make cluster-env`: kfp needs protobuf<7, which .venv cannot have).
CLUSTER_INTEGRATIONS = ("kubernetes", "kubeflow", "s3")


def integrations_installed(name: str) -> bool:
    from zenml.integrations.registry import integration_registry

    return integration_registry.is_installed(name)


def missing_integration_error(stack_name: str, flavor: str, kind: str) -> StackError | None:
    """An actionable error when a flavor's integration is not installed, else None."""
    integration = integration_of(flavor, kind)
    if integration is None or integrations_installed(integration):
        return None
    if integration in CLUSTER_INTEGRATIONS:
        return StackError(
            f"stack `{stack_name}` needs the `{flavor}` {kind}, whose ZenML integration `{integration}` is not "
            "installed in this environment. Fix: `make cluster-env` makes .venv-cluster, an environment with the "
            f"cluster integrations; run the command there (`.venv-cluster/bin/python run.py ...`)."
        )
    if integration == "s3":
        return StackError(
            f"stack `{stack_name}` needs the `{flavor}` {kind}, whose ZenML integration `s3` is not installed in "
            "this environment. Fix: `make s3-env` (pip install -c constraints.txt -e '.[s3]')."
        )
    return StackError(
        f"stack `{stack_name}` needs the `{flavor}` {kind}, whose ZenML integration `{integration}` is not "
        f"installed in this environment. Fix: `make setup` installs this project's integrations; for others run "
        f"`zenml integration install {integration}` — or switch stack: `zenml stack set default`."
    )


def check_usable(capabilities: StackCapabilities) -> None:
    """Fail early, with the fix, when the active stack cannot run: missing integration, unreachable server."""
    for kind, component in capabilities.components.items():
        error = missing_integration_error(capabilities.stack, component.flavor, kind)
        if error is not None:
            raise error
    uri = capabilities.tracking_uri
    if uri and uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StackError(
                f"the MLflow tracking server {uri} of stack `{capabilities.stack}` is not reachable ({reason}). "
                f"Fix: start it (e.g. `mlflow server --host 127.0.0.1 --port 5000`), correct MLFLOW_TRACKING_URI "
                f"and run `python run.py stacks up {capabilities.stack}`, or switch stack: `zenml stack set default`."
            ) from exc


def prepare_local_mlflow(capabilities: StackCapabilities) -> None:
    """For an embedded (SQLite) MLflow: create the database folder, and the experiment with its artifacts
    beside the database — MLflow would otherwise write artifacts to ./mlruns in whatever folder you ran from."""
    tracker, uri = capabilities.mlflow_tracker, capabilities.tracking_uri
    if tracker is not None and uri:
        ensure_local_experiment(uri, tracker.configuration.get("experiment_name"))


def ensure_local_experiment(uri: str | None, experiment: str | None) -> None:
    """For an embedded (SQLite) MLflow: the database folder, and the experiment `experiment` with its artifacts
    beside the database (created by `mlflow.set_experiment`, it would keep them in ./mlruns of the current folder)."""
    if not uri or not uri.startswith("sqlite:///"):
        return
    import mlflow

    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    if experiment:
        client = mlflow.MlflowClient(tracking_uri=uri)
        if client.get_experiment_by_name(experiment) is None:
            client.create_experiment(experiment, artifact_location=(database.parent / "artifacts").as_uri())


# --- inside a step ------------------------------------------------------------------------------------------


def mlflow_tracking_enabled() -> bool:
    """True inside a step that runs with an MLflow experiment tracker (and so has an active MLflow run)."""
    from zenml import get_step_context
    from zenml.client import Client

    tracker = Client().active_stack.experiment_tracker
    configured = get_step_context().step_run.config.experiment_tracker
    return bool(tracker is not None and tracker.flavor == "mlflow" and configured)


def mlflow_registry():
    """The stack's MLflow model registry component inside a step, or None."""
    from zenml.client import Client

    registry = Client().active_stack.model_registry
    return registry if registry is not None and registry.flavor == "mlflow" else None

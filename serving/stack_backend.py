"""Which backend serves on a stack: decided here, in one place, from what the stack offers."""

from __future__ import annotations

from lifecycle.errors import LifecycleError
from lifecycle.hints import run_hint, tool_hint
from serving.backends.base import ServingBackend
from serving.backends.bentoml import BentoMLBackend
from serving.backends.mlflow import MLflowBackend
from serving.backends.zenml import ZenMLBackend
from stacks.capabilities import StackCapabilities

# By name, for what needs only a backend's request and answer shapes (a recorded endpoint, no deployer).
BACKEND_CLASSES: dict[str, type[ServingBackend]] = {
    backend.name: backend for backend in (BentoMLBackend, MLflowBackend, ZenMLBackend)
}


def backend_for(capabilities: StackCapabilities) -> ServingBackend:
    """The backend that serves on this stack, knowing its stack (the record of what serves is kept per stack)."""
    backend = _choose(capabilities)
    backend.stack_name, backend.stack_id = capabilities.stack, capabilities.stack_id
    return backend


def _choose(capabilities: StackCapabilities) -> ServingBackend:
    """The stack's model deployer when it has one (BentoML or MLflow), else ZenML's own pipeline deployer."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.stack import StackComponent

    model_deployer = capabilities.get("model_deployer")
    if model_deployer is not None:
        # Built from the stack record itself: `Client().active_stack` can still hold the previous stack
        # in a process that switched stacks.
        stack = Client().get_stack(capabilities.stack, allow_name_prefix_match=False)
        component = StackComponent.from_model(stack.components[StackComponentType.MODEL_DEPLOYER][0])
        if model_deployer.flavor.startswith("bentoml"):
            if model_deployer.flavor != "bentoml_local":
                raise LifecycleError(
                    f"stack `{capabilities.stack}` uses the `{model_deployer.flavor}` model deployer, which cannot "
                    f"start BentoML 1.4 services locally. Fix: `{run_hint()} stacks up` registers the `bentoml` "
                    "and `full` stacks with this project's `bentoml_local` flavor."
                )
            return BentoMLBackend(component)
        if model_deployer.flavor == "mlflow":
            return MLflowBackend(component)
        raise LifecycleError(
            f"stack `{capabilities.stack}`: model deployer flavor `{model_deployer.flavor}` is not supported."
        )
    deployer = capabilities.get("deployer")
    if deployer is None:
        raise LifecycleError(
            f"stack `{capabilities.stack}` has neither a model deployer nor a pipeline deployer, so nothing can serve. "
            f"Fix: `{tool_hint('zenml')} stack update <stack> -D default` (ZenML's local deployer) or "
            f"`{tool_hint('zenml')} stack set default`."
        )
    return ZenMLBackend(deployer.name)


def active_backend() -> ServingBackend:
    """The backend of the active stack."""
    from stacks.capabilities import active_capabilities

    return backend_for(active_capabilities())

"""`python run.py stacks list`: each stack file, registered or not, active or not, and what it offers."""

from __future__ import annotations

from zenml.client import Client

from lifecycle.environment import bentoml_home
from stacks.capabilities import StackCapabilities, integrations_installed
from stacks.manage import StackStatus, stack_specs, stack_statuses


def stack_list_lines() -> list[str]:
    """The active stack, then a block per stack file (the example stacks included)."""
    statuses = stack_statuses(list(stack_specs(include_examples=True).values()))
    lines = [f"active stack: {Client().active_stack_model.name}"]
    for status in statuses:
        lines += _stack_block(status)
    return lines


def _stack_block(status: StackStatus) -> list[str]:
    spec = status.spec
    capabilities = StackCapabilities(spec.name, dict(spec.components))
    state = ("active" if status.active else "registered") if status.registered else "not registered"
    where = f"examples/{spec.file.name}" if spec.example else spec.file.name
    lines = [f"{'*' if status.active else ' '} {spec.name:<14} {state:<15} {where}", f"    {spec.description}"]
    lines += [f"    {role:<18} {what}" for role, what in capabilities.offers().items()]
    lines += _tool_lines(capabilities)
    lines += [f"    drift: {problem} (run `python run.py stacks up {spec.name}`)" for problem in status.drift]
    if spec.unresolved:
        lines.append(f"    needs environment: {', '.join(spec.unresolved)}")
    if spec.integrations:
        missing = [name for name in spec.integrations if not integrations_installed(name)]
        lines.append(
            f"    integrations:      {', '.join(spec.integrations)}"
            + (f" (not installed here: {', '.join(missing)}; `make cluster-env`)" if missing else " (installed)")
        )
    lines += [f"    to run it needs:   {need}" for need in spec.needs]
    if spec.example and not status.registered:
        lines.append(f"    register:          python run.py stacks up {spec.name}")
    return lines


def _tool_lines(capabilities: StackCapabilities) -> list[str]:
    """Where to look at the stack's MLflow runs and its BentoML home."""
    lines = []
    uri = capabilities.tracking_uri
    if uri:
        lines.append(
            f"    MLflow UI:         mlflow ui --backend-store-uri {uri}"
            if uri.startswith("sqlite")
            else f"    MLflow UI:         {uri}"
        )
    deployer = capabilities.get("model_deployer")
    if deployer and deployer.flavor.startswith("bentoml"):
        home, whose = bentoml_home()
        lines.append(f"    BentoML home:      {home} ({whose})")
    return lines

"""Stacks as code: register, list and remove the ZenML stacks described by the YAML files in `stacks/`.

Registration is idempotent: a second `stacks up` changes nothing; a component whose configuration drifted
from its file is updated and the change is reported. Only the keys a file sets are managed, so ZenML's own
settings of shared components (e.g. the default artifact store's path) are left alone.

On a shared ZenML server (the store is a server: a team's), what one checkout registers is seen by every other:
a stack that keeps its state in this checkout (`{state_dir}`, `{bentoml_home}` in its file: a SQLite MLflow
database, BentoML's home) is refused when named and skipped otherwise, and a component or secret that the server
already holds with other values is never rewritten: the command stops and says which values differ.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lifecycle.config import PROJECT_ROOT
from lifecycle.environment import bentoml_home, state_dir
from lifecycle.errors import StackError
from lifecycle.hints import run_hint
from stacks.capabilities import Component, missing_integration_error

STACKS_DIR = PROJECT_ROOT / "stacks"
EXAMPLES_DIR = STACKS_DIR / "examples"
_ENV_REFERENCE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class ComponentSpec(Component):
    """A component as a stack file describes it: a `Component` plus its type (orchestrator, tracker, ...)."""

    type: str = ""
    flavor_source: str = ""  # a flavor this project provides: registered with the component
    environment: dict[str, str] = field(default_factory=dict)  # set in every step that runs with the component


@dataclass(frozen=True)
class StackSpec:
    name: str
    file: Path
    description: str
    components: dict[str, ComponentSpec]
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    registered_by_default: bool = True
    unresolved: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # what running on the stack takes beyond registering it (cluster stacks)
    example: bool = False  # a file in stacks/examples/: registered only when named
    in_checkout: tuple[str, ...] = ()  # the placeholders that put its state in this checkout ({state_dir}, ...)

    @property
    def integrations(self) -> tuple[str, ...]:
        """The ZenML integrations the stack's flavors come from (empty for ZenML's built-in flavors)."""
        from stacks.capabilities import integration_of

        found = (integration_of(c.flavor, c.type) for c in self.components.values() if not c.flavor_source)
        return tuple(dict.fromkeys(name for name in found if name))


def _resolve(value: Any, missing: list[str]) -> Any:
    """`{state_dir}`, `{bentoml_home}` and `${VAR}` / `${VAR:-default}` in strings; `{{secret.key}}` references
    stay as they are."""
    if isinstance(value, dict):
        return {key: _resolve(item, missing) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, missing) for item in value]
    if not isinstance(value, str):
        return value

    def from_environment(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            missing.append(name)
            return match.group(0)
        return default

    value = value.replace("{state_dir}", str(state_dir())).replace("{bentoml_home}", bentoml_home()[0])
    return _ENV_REFERENCE.sub(from_environment, value)


def _unresolved(value: Any) -> bool:
    """A value still holding `${VAR}` (not set here) cannot be compared with what is registered."""
    return isinstance(value, str) and _ENV_REFERENCE.search(value) is not None


CHECKOUT_PLACEHOLDERS = ("{state_dir}", "{bentoml_home}")


def load_stack_file(path: Path) -> StackSpec:
    try:
        text = path.read_text()
        raw = yaml.safe_load(text) or {}
        body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # not the comments
        missing: list[str] = []
        components = {
            kind: ComponentSpec(
                type=kind,
                name=str(spec["name"]),
                flavor=str(spec["flavor"]),
                configuration=_resolve(spec.get("configuration") or {}, missing),
                flavor_source=str(spec.get("flavor_source", "")),
                environment={
                    str(key): str(value) for key, value in _resolve(spec.get("environment") or {}, missing).items()
                },
            )
            for kind, spec in (raw.get("components") or {}).items()
        }
        secrets = {name: _resolve(values, missing) for name, values in (raw.get("secrets") or {}).items()}
        return StackSpec(
            name=str(raw["name"]),
            file=path,
            description=_resolve(str(raw.get("description", "")), []),
            components=components,
            secrets=secrets,
            registered_by_default=bool(raw.get("default", True)),
            unresolved=tuple(dict.fromkeys(missing)),
            needs=tuple(str(item) for item in raw.get("needs") or ()),
            example=path.parent.name == EXAMPLES_DIR.name,
            in_checkout=tuple(p for p in CHECKOUT_PLACEHOLDERS if p in body),
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise StackError(f"stack file {path} is invalid ({exc!r}). Fix the file; see stacks/mlflow.yaml.") from exc


def stack_specs(directory: Path = STACKS_DIR, include_examples: bool = False) -> dict[str, StackSpec]:
    """The stacks defined in `directory`; with `include_examples`, the cluster examples in stacks/examples/ too."""
    specs: dict[str, StackSpec] = {}
    paths = sorted(directory.glob("*.yaml"))
    if include_examples:
        paths += sorted((directory / EXAMPLES_DIR.name).glob("*.yaml"))
    for path in paths:
        spec = load_stack_file(path)
        if spec.name in specs:
            raise StackError(f"stack `{spec.name}` is defined twice: {specs[spec.name].file} and {path}.")
        specs[spec.name] = spec
    return specs


def select(names: list[str], specs: dict[str, StackSpec], for_registration: bool = False) -> list[StackSpec]:
    """The named stacks, or the default set; unknown names are an error listing what exists."""
    if not names:
        return [
            spec for spec in specs.values() if not spec.example and (spec.registered_by_default or not for_registration)
        ]
    unknown = [name for name in names if name not in specs]
    if unknown:
        raise StackError(
            f"no stack file defines {', '.join(unknown)}; defined: {', '.join(specs)} "
            f"(files in {STACKS_DIR} and {EXAMPLES_DIR}). Fix: use one of those names, or pass --file PATH."
        )
    return [specs[name] for name in names]


# --- talking to ZenML --------------------------------------------------------------------------------------


def _component_type(kind: str):
    from zenml.enums import StackComponentType

    try:
        return StackComponentType(kind)
    except ValueError as exc:
        raise StackError(f"unknown component type `{kind}` in a stack file") from exc


def _existing_component(client, kind: str, name: str):
    try:
        return client.get_stack_component(_component_type(kind), name, allow_name_prefix_match=False)
    except KeyError:
        return None


def _existing_stack(client, name: str):
    try:
        return client.get_stack(name, allow_name_prefix_match=False)
    except KeyError:
        return None


def _ensure_secret(client, name: str, values: dict[str, str], changes: list[str], shared: bool = False) -> None:
    try:
        secret = client.get_secret(name, allow_partial_name_match=False, allow_partial_id_match=False)
    except KeyError:
        client.create_secret(name, values)
        changes.append(f"created secret {name} (keys: {', '.join(values)})")
        return
    if {key: secret.secret_values.get(key) for key in values} != values:
        if shared:
            differ = [key for key in values if secret.secret_values.get(key) != values[key]]
            raise StackError(
                f"the shared ZenML server's secret `{name}` holds other values for {', '.join(differ)} than this "
                "environment. A shared server's secrets belong to the team: this checkout does not rewrite them. "
                "Fix: export the team's values (`source .state/team/team.env` for `make team-up`'s servers), or "
                f"change them for everyone on purpose: `zenml secret update {name} ...`."
            )
        client.update_secret(name, add_or_update_values=values)
        changes.append(f"updated secret {name} (values changed in the environment)")


def _ensure_flavor(client, component: ComponentSpec, changes: list[str]) -> None:
    """Register the project's own flavor (e.g. `bentoml_local`) the first time a stack needs it."""
    if not component.flavor_source:
        return
    try:
        client.get_flavor_by_name_and_type(component.flavor, _component_type(component.type))
    except KeyError:
        client.create_flavor(source=component.flavor_source, component_type=_component_type(component.type))
        changes.append(f"registered {component.type} flavor {component.flavor} ({component.flavor_source})")


def _drift(existing, component: ComponentSpec) -> dict[str, tuple[Any, Any]]:
    """What the registered component has other than the file says: configuration keys, and `environment.NAME`
    for the variables the file sets (values still holding an unset `${VAR}` cannot be compared)."""
    registered_environment = dict(existing.environment or {})
    wanted = {
        **{key: (existing.configuration.get(key), value) for key, value in component.configuration.items()},
        **{f"environment.{k}": (registered_environment.get(k), v) for k, v in component.environment.items()},
    }
    return {key: (old, new) for key, (old, new) in wanted.items() if not _same(old, new) and not _unresolved(new)}


def _same(registered: Any, wanted: Any) -> bool:
    """Equal, counting a number or flag the server stores as a value and the file gives as text from the
    environment (`port: ${REMOTE_NODE_1_PORT}` is '2232' here and 2232 there) as the same."""
    if registered == wanted:
        return True
    scalar = isinstance(registered, (bool, int, float)) and isinstance(wanted, str)
    return scalar and str(registered).lower() == wanted.strip().lower()


def _ensure_component(client, component: ComponentSpec, changes: list[str], shared: bool = False) -> None:
    _ensure_flavor(client, component, changes)
    existing = _existing_component(client, component.type, component.name)
    label = f"{component.type} {component.name}"
    if existing is None:
        client.create_stack_component(
            component.name,
            component.flavor,
            _component_type(component.type),
            component.configuration,
            environment=dict(component.environment) or None,
        )
        changes.append(f"created {label} ({component.flavor})")
        return
    if existing.flavor_name != component.flavor:
        raise StackError(
            f"{label} already exists with flavor `{existing.flavor_name}`, but the stack file wants "
            f"`{component.flavor}`. Fix: remove it (`zenml {component.type.replace('_', '-')} delete "
            f"{component.name}`) or rename the component in the file."
        )
    drift = _drift(existing, component)
    if drift and shared:
        described = "; ".join(f"{key} is {old!r} there, {new!r} here" for key, (old, new) in drift.items())
        raise StackError(
            f"the shared ZenML server's {label} is configured differently from this checkout's stack file "
            f"({described}). A shared server's components belong to the team: this checkout does not rewrite "
            "them. Fix: export the team's values (`source .state/team/team.env` for `make team-up`'s servers), or "
            f"change the component for everyone on purpose: `zenml {component.type.replace('_', '-')} update "
            f"{component.name} ...`."
        )
    if drift:
        client.update_stack_component(
            component.name,
            _component_type(component.type),
            configuration=dict(component.configuration),
            environment=dict(component.environment) or None,
        )
        described = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in drift.items())
        changes.append(f"updated {label} ({described})")


def on_shared_server(specs: list[StackSpec], named: bool) -> tuple[list[StackSpec], list[str]]:
    """(the stacks to register, what to say) when the store is a shared ZenML server: a stack that keeps its state
    in this checkout is refused when named (StackError), skipped otherwise."""
    from stacks.remote_store import server_url

    url = server_url()
    kept = [spec for spec in specs if url is None or not spec.in_checkout]
    local = [spec for spec in specs if spec not in kept]
    if not local:
        return kept, []
    names = ", ".join(f"`{spec.name}`" for spec in local)
    why = (
        f"{names} keep{'s' if len(local) == 1 else ''} state in this checkout (SQLite, folders under "
        f"{', '.join(sorted({p for spec in local for p in spec.in_checkout}))}): registered on the shared ZenML "
        f"server {url}, every checkout would rewrite {'it' if len(local) == 1 else 'them'} with its own paths"
    )
    if named:
        raise StackError(
            f"{why}. Fix: use the team's stacks (`stacks up team`, `stacks up mlflow_server`), or use this stack "
            "with a local store (`unset ZENML_STORE_URL`)."
        )
    return kept, [f"skipped {why}"]


def stacks_up(specs: list[StackSpec]) -> list[str]:
    """Register the stacks (components, secrets, stack); return what changed (empty: nothing to do). On a shared
    server (a team's), existing components and secrets are compared, never rewritten."""
    from zenml.client import Client

    from stacks.remote_store import server_url

    shared = server_url() is not None
    client = Client()
    seen: dict[str, ComponentSpec] = {}
    for spec in specs:
        if spec.unresolved:
            raise StackError(
                f"stack `{spec.name}` ({spec.file.name}) needs the environment variable(s) "
                f"{', '.join(spec.unresolved)}. Fix: export them and run `{run_hint(f'stacks up {spec.name}')}`."
            )
        for component in spec.components.values():
            key = f"{component.type}/{component.name}"
            if key in seen and seen[key] != component:
                raise StackError(
                    f"{component.type} `{component.name}` is defined differently by two stack files; "
                    "give one of them another name."
                )
            seen[key] = component
            error = missing_integration_error(spec.name, component.flavor, component.type)
            if error is not None:
                raise error
    changes: list[str] = []
    for spec in specs:
        for secret_name, values in spec.secrets.items():
            _ensure_secret(client, secret_name, values, changes, shared)
        for component in spec.components.values():
            _ensure_component(client, component, changes, shared)
        wanted = {_component_type(kind): component.name for kind, component in spec.components.items()}
        existing = _existing_stack(client, spec.name)
        if existing is None:
            client.create_stack(spec.name, components=wanted)
            changes.append(f"created stack {spec.name}")
            continue
        current = {kind: [c.name for c in components] for kind, components in existing.components.items()}
        updates = {kind: name for kind, name in wanted.items() if current.get(kind) != [name]}
        # Component kinds the file does not name are removed from the stack (it must match its file).
        updates.update({kind: [] for kind in current if kind not in wanted and current[kind]})
        if updates:
            client.update_stack(spec.name, component_updates=updates)
            described = ", ".join(f"{kind.value}={name or '(removed)'}" for kind, name in updates.items())
            changes.append(f"updated stack {spec.name} ({described})")
    return changes


def stacks_down(specs: list[StackSpec]) -> list[str]:
    """Stop the stacks' services, delete the stacks, then the components no remaining stack uses."""
    from zenml.client import Client

    client = Client()
    changes: list[str] = []
    for spec in specs:
        stack = _existing_stack(client, spec.name)
        if stack is None:
            continue
        changes.extend(stop_model_servers(stack))
        if client.active_stack_model.id == stack.id:
            client.activate_stack("default")
            changes.append("activated stack default (the removed stack was active)")
        client.delete_stack(stack.id)
        changes.append(f"deleted stack {spec.name}")
    in_use = {
        (kind, component.name)
        for stack in client.list_stacks(size=1000).items
        for kind, components in client.get_stack(stack.id).components.items()
        for component in components
    }
    for spec in specs:
        for component in spec.components.values():
            kind = _component_type(component.type)
            if component.name == "default" or (kind, component.name) in in_use:
                continue
            if _existing_component(client, component.type, component.name) is not None:
                client.delete_stack_component(component.name, kind)
                changes.append(f"deleted {component.type} {component.name}")
                in_use.add((kind, component.name))  # deleted once, even if two stacks named it
    return changes


@dataclass
class StackStatus:
    spec: StackSpec
    registered: bool
    active: bool
    drift: list[str]


def stack_statuses(specs: list[StackSpec]) -> list[StackStatus]:
    from zenml.client import Client

    client = Client()
    active_name = client.active_stack_model.name
    statuses = []
    for spec in specs:
        stack = _existing_stack(client, spec.name)
        drift: list[str] = []
        if stack is not None:
            current = {kind.value: [c.name for c in comps] for kind, comps in stack.components.items()}
            for kind, component in spec.components.items():
                if current.get(kind) != [component.name]:
                    drift.append(f"{kind} is {current.get(kind) or 'missing'}, file says {component.name}")
                    continue
                existing = _existing_component(client, kind, component.name)
                if existing is not None:
                    drift += [f"{component.name}.{key} differs from the file" for key in _drift(existing, component)]
        statuses.append(StackStatus(spec, stack is not None, spec.name == active_name, drift))
    return statuses


def stop_model_servers(stack) -> list[str]:
    """Stop and delete the model servers that the stack's model deployer runs (nothing to do without one)."""
    from zenml.model_deployers import BaseModelDeployer
    from zenml.stack import StackComponent

    changes: list[str] = []
    for component_model in stack.components.get(_component_type("model_deployer"), []):
        deployer = StackComponent.from_model(component_model)
        assert isinstance(deployer, BaseModelDeployer)  # a component of the model_deployer type
        for service in deployer.find_model_server():
            deployer.delete_model_server(service.uuid, force=True)
            changes.append(f"stopped model server {service.uuid} ({component_model.name})")
    return changes

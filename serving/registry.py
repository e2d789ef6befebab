"""The servers this project runs, per stack, in its state folder: written by every rollout and undeploy (and
refreshed whenever the stack's deployer is asked), read by `status`, `predict` and `undeploy` without starting
ZenML, whose client takes seconds to start. Liveness is never taken from here: the pid and the health endpoint
are checked each time. The stack's deployer (ZenML's records) stays the source of truth; where this record is
missing for the active stack, the commands ask the deployer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from lifecycle.environment import file_lock, state_dir
from lifecycle.project_state import read_json, write_json
from serving.backends.base import Endpoint


def _folder() -> Path:
    return state_dir() / "serving"


def _path(stack_id: str) -> Path:
    return _folder() / f"{stack_id}.json"


def active_stack_id() -> str | None:
    """The active stack's id as ZenML's own configuration files hold it (the repository's `.zen/config.yaml`,
    else the global `config.yaml`), read without starting a ZenML client."""
    candidates = []
    repository = os.environ.get("ZENML_REPOSITORY_PATH")
    if repository:
        candidates.append(Path(repository))
    else:
        here = Path.cwd().resolve()
        candidates += [here, *here.parents]
    for folder in candidates:
        config = folder / ".zen" / "config.yaml"
        if config.is_file():
            found = (yaml.safe_load(config.read_text()) or {}).get("active_stack_id")
            if found:
                return str(found)
            break
    global_config = Path(os.environ.get("ZENML_CONFIG_PATH", Path.home() / ".config" / "zenml")) / "config.yaml"
    if global_config.is_file():
        found = (yaml.safe_load(global_config.read_text()) or {}).get("active_stack_id")
        return str(found) if found else None
    return None


@contextmanager
def _locked(stack_id: str) -> Iterator[Path]:
    """One writer at a time per stack (deploys and undeploys may overlap)."""
    with file_lock(_folder() / f"{stack_id}.lock"):
        yield _path(stack_id)


def served(stack_id: str) -> dict[str, Any] | None:
    """{"stack": name, "backend": name, "endpoints": [Endpoint, ...]} as last recorded, None when never recorded."""
    record = read_json(_path(stack_id))
    if not isinstance(record, dict):
        return None
    try:
        endpoints = [
            Endpoint(**{k: v for k, v in e.items() if k in Endpoint.__dataclass_fields__}) for e in record["endpoints"]
        ]
    except (KeyError, TypeError):
        return None
    return {"stack": record.get("stack", ""), "backend": record.get("backend", ""), "endpoints": endpoints}


def every_stack() -> list[dict[str, Any]]:
    """`served` of every stack this project has recorded servers on."""
    folder = _folder()
    records = [served(path.stem) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return [record for record in records if record is not None]


def record_all(stack_id: str, stack_name: str, backend: str, endpoints: list[Endpoint]) -> None:
    """Replace the stack's record with what its deployer lists now."""
    if not stack_id:
        return
    with _locked(stack_id) as path:
        write_json(path, {"stack": stack_name, "backend": backend, "endpoints": [e.as_dict() for e in endpoints]})


def record_change(
    stack_id: str, stack_name: str, backend: str, added: Sequence[Endpoint] = (), removed: Sequence[Endpoint] = ()
) -> None:
    """Add started servers and drop stopped ones, keeping the rest of the stack's record."""
    if not stack_id:
        return
    with _locked(stack_id) as path:
        record = read_json(path) if path.is_file() else None
        current = record.get("endpoints", []) if isinstance(record, dict) else []
        gone = {e.name for e in removed} | {e.name for e in added}
        kept = [e for e in current if e.get("name") not in gone]
        write_json(path, {"stack": stack_name, "backend": backend, "endpoints": kept + [e.as_dict() for e in added]})


def active_record() -> tuple[str, dict[str, Any]] | None:
    """(stack id, record) of the active stack, when this project has recorded what serves there."""
    stack_id = active_stack_id()
    if not stack_id:
        return None
    record = served(stack_id)
    return (stack_id, record) if record is not None else None

"""What a model version of the Model Control Plane holds, typed: its artifacts, loaded, and the dictionaries and
lists of its run metadata (ZenML types every metadata value as any of its metadata types)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lifecycle.errors import LifecycleError
from lifecycle.hints import run_hint

if TYPE_CHECKING:
    from zenml.models import ArtifactVersionResponse, ModelVersionResponse


def loaded_artifact(version: ModelVersionResponse, name: str) -> Any:
    """The version's data artifact `name`, loaded; a LifecycleError when the version has none of that name."""
    return _loaded(version.get_artifact(name), version, name)


def loaded_model(version: ModelVersionResponse, name: str) -> Any:
    """The version's model artifact `name`, loaded; a LifecycleError when the version has none of that name."""
    return _loaded(version.get_model_artifact(name), version, name)


def _loaded(artifact: ArtifactVersionResponse | None, version: ModelVersionResponse, name: str) -> Any:
    if artifact is None:
        raise LifecycleError(
            f"model `{version.model.name}` version {version.number} has no artifact `{name}`: only versions "
            "made by this project's training pipeline have it. Fix: choose such a version, or train one "
            f"(`{run_hint()} train`)."
        )
    return artifact.load()


def metadata_dict(metadata: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The dictionary held under `key` (empty when there is none)."""
    value = metadata.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def metadata_list(metadata: Mapping[str, Any], key: str) -> list[Any]:
    """The list held under `key` (empty when there is none)."""
    value = metadata.get(key)
    return list(value) if isinstance(value, list | tuple) else []


def metadata_str(metadata: Mapping[str, Any], key: str) -> str | None:
    """The text held under `key` (None when there is none, or it is not text)."""
    value = metadata.get(key)
    return value if isinstance(value, str) else None


def metadata_int(metadata: Mapping[str, Any], key: str) -> int | None:
    """The whole number held under `key` (None when there is none, or it is not a whole number)."""
    value = metadata.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None

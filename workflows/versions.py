"""Looking up a model's versions on the Model Control Plane: by number, by stage, all of them."""

from __future__ import annotations

from zenml.client import Client
from zenml.models import ModelVersionResponse

from lifecycle.errors import LifecycleError
from lifecycle.hints import tool_hint


class ReleaseError(LifecycleError):
    """A release command that cannot act (unknown version, nothing in staging, no earlier production)."""


def version_named(model_name: str, number: str | int) -> ModelVersionResponse:
    try:
        return Client().get_model_version(model_name, int(number))
    except (KeyError, ValueError):
        known = version_numbers(model_name)
        raise ReleaseError(
            f"model `{model_name}` has no version {number}"
            + (f" (its versions: {', '.join(map(str, known))})" if known else " (it has no versions)")
            + f". Fix: `{tool_hint('zenml')} model version list --model="
            + model_name
            + "` lists them."
        ) from None


def version_numbers(model_name: str) -> list[int]:
    try:
        return sorted(v.number for v in Client().list_model_versions(model_name, size=1000).items)
    except KeyError:
        return []


def in_stage(model_name: str, stage: str) -> ModelVersionResponse | None:
    try:
        return Client().get_model_version(model_name, stage)
    except KeyError:
        return None


def production_version(model_name: str, stage: str = "production") -> str | None:
    version = in_stage(model_name, stage)
    return None if version is None else str(version.number)

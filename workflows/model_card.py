"""Model cards from the store: gathered from what the lifecycle recorded on a version (its training run's
artifacts, the Model Control Plane metadata, the serving records), written to reports/models/<model>/v<N>.html
and .md, and saved as an `HTMLString` artifact on the version so the dashboard shows it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from zenml.client import Client

from lifecycle.hints import run_hint, tool_hint
from lifecycle.model_card import ModelCard, write_card_files
from lifecycle.model_versions import loaded_artifact
from lifecycle.names import DATA_QUALITY, EVALUATION, FEATURE_SCHEMA, MODEL_CARD
from steps.training.card import compose_card, training_facts

if TYPE_CHECKING:
    from zenml.models import ModelVersionResponse


def card_version(model_name: str) -> ModelVersionResponse | None:
    """The version a card shows by default: production, else the newest; None when the model has none."""
    client = Client()
    try:
        return client.get_model_version(model_name, "production")
    except KeyError:
        try:
            newest = client.list_model_versions(model_name_or_id=model_name, sort_by="desc:number", size=1).items
        except KeyError:
            newest = []
        return newest[0] if newest else None


def card_for(model_name: str, number: int | str) -> ModelCard:
    """A version's card from the store as it is now."""
    version = Client().get_model_version(model_name, int(number))
    produced_by = version.get_artifact(EVALUATION)
    if produced_by is None:
        from lifecycle.errors import LifecycleError

        raise LifecycleError(
            f"model `{model_name}` version {number} has no `{EVALUATION}` artifact: it was not made by this "
            f"project's training pipeline, so it has no card. Fix: pick a version `{run_hint()} train` made."
        )
    training, split, run_name = training_facts(produced_by.producer_pipeline_run_id)
    return compose_card(
        version,
        loaded_artifact(version, EVALUATION),
        loaded_artifact(version, DATA_QUALITY),
        loaded_artifact(version, FEATURE_SCHEMA),
        training,
        split,
        run_name,
    )


def refresh_card(model_name: str, number: int | str, save_artifact: bool = True) -> tuple[ModelCard, Path, Path]:
    """Rebuild a version's card after a change (promotion, deployment, rollback, monitoring): the files, and
    a new version of the `model_card` artifact on the model version."""
    from zenml import Model, link_artifact_to_model
    from zenml import save_artifact as save
    from zenml.types import HTMLString

    card = card_for(model_name, number)
    html_path, md_path = write_card_files(card)
    if save_artifact:
        saved = save(HTMLString(html_path.read_text()), name=MODEL_CARD)
        link_artifact_to_model(saved, model=Model(name=model_name, version=str(card.version)))
    return card, html_path, md_path


def refresh_cards_quietly(model_name: str, numbers: list[int | str | None]) -> list[Path]:
    """`refresh_card` for the versions a command changed; a card that cannot be rebuilt never fails the command
    that changed the version (it says why instead)."""
    import click

    written = []
    for number in dict.fromkeys(n for n in numbers if n not in (None, "", "?")):
        try:
            written.append(refresh_card(model_name, number)[1])
        except Exception as exc:  # the command's own work is done; the card is a report of it
            click.secho(f"note: model card of `{model_name}` version {number} not updated: {exc}", err=True)
    return written


def report_cards(say: Callable[[str], None], model_name: str, *versions: int | str | None) -> None:
    """Rebuild the cards of the versions a command changed, and say where they are."""
    from workflows.reporting import shown_path

    written = refresh_cards_quietly(model_name, list(versions))
    if written:
        say("model card: " + ", ".join(shown_path(str(path)) for path in written))


def default_card_version(model_name: str) -> int:
    """The version `card` shows without --version: production, else the newest."""
    from lifecycle.errors import LifecycleError

    version = card_version(model_name)
    if version is None:
        raise LifecycleError(
            f"model `{model_name}` has no versions. Fix: train it first (`{run_hint()} train`), or pass "
            f"--model-name of a model that has some (`{tool_hint('zenml')} model list` lists them)."
        )
    return version.number


def write_card(model_name: str, version: str | None) -> tuple[int, Path, Path]:
    """The card of `version` (default: `default_card_version`), refreshed in reports/models/: number, HTML, Markdown."""
    from workflows.versions import version_named

    number = version_named(model_name, version).number if version else default_card_version(model_name)
    html_path, md_path = write_card_files(card_for(model_name, number))
    return number, html_path, md_path


def replaced_versions(deployment_record: dict | None) -> list[str]:
    """The versions whose servers a deployment stopped (their cards no longer list them as served)."""
    from serving.backends.base import parse_server_name

    names = (deployment_record or {}).get("replaced") or []
    return [parsed[1] for parsed in map(parse_server_name, names) if parsed]

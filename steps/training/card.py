from typing import TYPE_CHECKING, Annotated, Any

from zenml import get_step_context, step
from zenml.client import Client
from zenml.models import ModelVersionResponse
from zenml.types import HTMLString

from lifecycle.config import TrainingConfig
from lifecycle.metrics import EvaluationReport
from lifecycle.model_card import ModelCard, render_html, write_card_files
from lifecycle.model_versions import metadata_dict, metadata_list
from lifecycle.modeling import column_treatments
from lifecycle.mojo_model import h2o_treatments
from lifecycle.monitoring import MONITORING_HISTORY
from lifecycle.names import CALENDAR_FEATURES, MODEL_CARD, SPLIT_STEP
from lifecycle.promotion import PromotionDecision
from lifecycle.validation import DataQualityReport, FeatureSchema
from steps.training.releases import RELEASES

if TYPE_CHECKING:
    from serving.front_door import FrontDoor


def serving_of(model_name: str, version: str) -> list[dict[str, Any]]:
    """Where this version is served, from the project's serving records of every stack, with the front door."""
    from serving import front_door, registry

    door = front_door.current(model_name)
    found = []
    for record in registry.every_stack():
        for endpoint in record.get("endpoints", []):
            if endpoint.model_name != model_name or str(endpoint.model_version) != str(version):
                continue
            found.append(
                {
                    "stack": record.get("stack", ""),
                    "backend": record.get("backend", ""),
                    "role": endpoint.role,
                    "url": endpoint.url,
                    "front_door": _door_url(door, endpoint.url),
                }
            )
    return found


def _door_url(door: "FrontDoor | None", server_url: str) -> str | None:
    """The front door's address when the server at `server_url` stands behind it."""
    if door is None or all(up.rstrip("/") != server_url.rstrip("/") for up in door.upstreams().values()):
        return None
    return door.url


def training_facts(run_id: Any) -> tuple[TrainingConfig, dict[str, Any], str]:
    """The training run's training config, its split step's figures, and its name."""
    run = Client().get_pipeline_run(run_id)
    training = TrainingConfig.model_validate((run.config.parameters or {}).get("training") or {})
    split_step = run.steps.get(SPLIT_STEP)
    split = dict(split_step.run_metadata) if split_step is not None else {}
    return training, split, run.name


def calendar_features(metadata: dict[str, Any]) -> dict[str, list[str]] | None:
    """The calendar features the version's model derives from each time column, as the register step recorded
    them; None for a version registered before they were recorded."""
    recorded = metadata_dict(metadata, CALENDAR_FEATURES)
    return {str(column): [str(part) for part in parts] for column, parts in recorded.items()} if recorded else None


def compose_card(
    version: ModelVersionResponse,
    evaluation: EvaluationReport,
    quality: DataQualityReport,
    schema: FeatureSchema,
    training: TrainingConfig,
    split: dict[str, Any],
    run_name: str,
) -> ModelCard:
    """The card of one version: the training facts given, the rest from the version's metadata as it is now."""
    metadata = dict(version.run_metadata)
    return ModelCard(
        model_name=version.model.name,
        version=str(version.number),
        description=version.model.description or "",
        intended_use=version.model.use_cases or "",
        limitations=version.model.limitations or "",
        stage=str(getattr(version.stage, "value", version.stage) or "") or None,  # an enum member or text
        created=f"{version.created:%Y-%m-%d %H:%M} UTC" if version.created else "",
        run_name=run_name,
        schema_=schema,
        data=quality,
        data_fingerprint=str(metadata.get("data_fingerprint_sha256", "")),
        treatments=h2o_treatments(schema)
        if str(metadata.get("estimator", "")).startswith("h2o_automl")
        else column_treatments(schema, training, calendar_features(metadata)),
        split=split,
        evaluation=evaluation,
        promotion=metadata_dict(metadata, "promotion"),
        estimator=str(metadata.get("estimator", training.estimator.name)),
        estimator_params=metadata_dict(metadata, "estimator_params"),
        seed=metadata.get("seed", training.seed),
        git_commit=str(metadata.get("git_commit", "")),
        releases=metadata_list(metadata, RELEASES),
        serving=serving_of(version.model.name, str(version.number)),
        monitoring=metadata_list(metadata, MONITORING_HISTORY),
        trainers=metadata_dict(metadata, "trainer_comparison"),
        leaderboard=metadata_list(metadata, "automl_leaderboard"),
    )


@step(enable_cache=False)
def write_model_card(
    evaluation_report: EvaluationReport,
    feature_schema: FeatureSchema,
    data_quality_report: DataQualityReport,
    promotion_decision: PromotionDecision,
    training: TrainingConfig,
) -> Annotated[HTMLString, MODEL_CARD]:
    """The version's model card, after the promotion decision: shown under this run in the dashboard and written
    to reports/models/<model>/v<N>.html and .md. Later changes (promote, deploy, rollback, monitor) rebuild it."""
    context = get_step_context()
    version = Client().get_model_version(context.model.name, context.model.number)
    _, split, _ = training_facts(context.pipeline_run.id)
    card = compose_card(
        version, evaluation_report, data_quality_report, feature_schema, training, split, context.pipeline_run.name
    )
    write_card_files(card)
    return HTMLString(render_html(card))

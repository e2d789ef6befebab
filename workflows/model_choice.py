"""Which model a command acts on when the user does not say, and with which configuration."""

from __future__ import annotations

from dataclasses import dataclass

from lifecycle.config import RunConfig, apply_overrides, load_config
from lifecycle.project_state import current_model, remembered_config


@dataclass
class ModelChoice:
    name: str
    config: RunConfig
    why: str  # what named it: shown to the user on the command's first line

    def line(self) -> str:
        return f"model `{self.name}` ({self.why})"


def model_in_question(config_path: str, model_name: str | None, explicit_config: bool) -> ModelChoice:
    """`--model-name`, else the model of an explicit `--config`, else the model most recently trained in this
    project, else the default config's. Its configuration is the one it was last trained with here when known (so
    `monitor` retrains it on its own data), unless `--config` was given."""
    trained_last = None if model_name or explicit_config else current_model()
    if model_name:
        name, why = model_name, "--model-name"
    elif explicit_config:
        name, why = load_config(config_path).model.name, f"named by {config_path}"
    elif trained_last:
        name, why = trained_last, "the model most recently trained here; --model-name picks another"
    else:
        name, why = load_config(config_path).model.name, f"named by {config_path}; --model-name picks another"
    remembered = None if explicit_config else remembered_config(name)
    return ModelChoice(name, remembered or apply_overrides(load_config(config_path), model_name=name), why)


def serving_target(
    config_path: str, model_name: str | None, explicit_config: bool, all_models: bool = False
) -> ModelChoice | None:
    """For the serving commands: the model meant, or None for every model (`--all`)."""
    return None if all_models else model_in_question(config_path, model_name, explicit_config)

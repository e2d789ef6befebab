"""What a cluster stack would submit, written to files without a cluster: `stacks compile NAME --image IMAGE`.

The training pipeline is configured as `train` configures it on every stack, then ZenML itself turns it into what
its orchestrator sends:
- Kubeflow: the KFP pipeline spec (one container task per step, their order, image, command and environment),
  compiled by the orchestrator's own code; only its last act, the upload to Kubeflow Pipelines, is left out.
- Kubernetes: the orchestrator's Job manifest (the pod that starts the step pods inside the cluster), built by the
  orchestrator's own manifest code; the step pods are made by that pod at run time, so they are not in the file.

Nothing is built, pushed or contacted but the ZenML server: the image is named, not built (`skip_build`), and
it must already hold the project's code and requirements. The snapshot the files point to is stored on the
server, so the files can be submitted later."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lifecycle.config import RunConfig
from lifecycle.errors import LifecycleError

COMPILED_FLAVORS = ("kubeflow", "kubernetes")
DEFAULT_SERVICE_ACCOUNT = "zenml-service-account"  # what ZenML 0.98 creates when the settings name none
TOKEN_VARIABLE = "ZENML_STORE_API_TOKEN"
REDACTED = "<redacted: the ZenML server token the orchestrator passes at submission>"


class CompileError(LifecycleError):
    """The active stack cannot be compiled offline (wrong orchestrator, missing integration)."""


@dataclass(frozen=True)
class Compiled:
    stack: str
    flavor: str
    path: Path
    snapshot: str
    steps: tuple[str, ...]


def _docker_settings(image: str) -> Any:
    from zenml.config import DockerSettings

    # The pods run `image` as it is: it carries the code, so nothing is uploaded to the artifact store.
    return DockerSettings(
        parent_image=image,
        skip_build=True,
        allow_download_from_artifact_store=False,
        allow_download_from_code_repository=False,
    )


def _environments(snapshot: Any, stack: Any) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The environment ZenML gives every step (its server, project, stack and a token) and each step's own
    (the components' `environment`), as the orchestrator's run does before it submits."""
    from zenml.orchestrators.utils import get_config_environment_vars
    from zenml.utils.env_utils import get_runtime_environment

    base, secrets = get_config_environment_vars()
    base.update(secrets)
    per_step = {
        name: {**base, **get_runtime_environment(config=step.config, stack=stack)}
        for name, step in snapshot.step_configurations.items()
    }
    return base, per_step


def redact_tokens(document: Any) -> Any:
    """The compiled files are for reading and sharing: the server's API token in them is replaced by a note."""
    if isinstance(document, list):
        return [redact_tokens(item) for item in document]
    if not isinstance(document, dict):
        return document
    if document.get("name") == TOKEN_VARIABLE and isinstance(document.get("value"), str):
        return {**document, "value": REDACTED}
    return {key: redact_tokens(value) for key, value in document.items()}


def _write(documents: list[Any], output: Path) -> Path:
    output.write_text(yaml.safe_dump_all([redact_tokens(d) for d in documents], sort_keys=False))
    return output


def _compile_kubeflow(orchestrator: Any, snapshot: Any, stack: Any, output: Path) -> Path:
    from zenml.integrations.kubeflow.orchestrators.kubeflow_orchestrator import KubeflowOrchestrator

    class CompileOnly(KubeflowOrchestrator):
        """ZenML's Kubeflow orchestrator with its upload-and-run left out: the spec is the result."""

        def _upload_and_run_pipeline(self, snapshot: Any, pipeline_file_path: str, run_name: str) -> None:
            self.compiled_path = Path(pipeline_file_path)

    orchestrator.__class__ = CompileOnly
    base, per_step = _environments(snapshot, stack)
    orchestrator.submit_pipeline(snapshot=snapshot, stack=stack, base_environment=base, step_environments=per_step)
    documents = list(yaml.safe_load_all(orchestrator.compiled_path.read_text()))
    orchestrator.compiled_path.unlink()  # ZenML's own copy holds the token
    return _write(documents, output)


def _compile_kubernetes(orchestrator: Any, snapshot: Any, stack: Any, output: Path) -> Path:
    from kubernetes.client import ApiClient
    from zenml.integrations.kubernetes.constants import KUBERNETES_SECRET_TOKEN_KEY_NAME
    from zenml.integrations.kubernetes.orchestrators.kubernetes_orchestrator import KubernetesOrchestrator
    from zenml.integrations.kubernetes.orchestrators.kubernetes_orchestrator_entrypoint_configuration import (
        KubernetesOrchestratorEntrypointConfiguration as Entrypoint,
    )
    from zenml.integrations.kubernetes.pod_settings import KubernetesPodSettings

    class CompileOnly(KubernetesOrchestrator):
        """ZenML's Kubernetes orchestrator that names the service account it would create instead of creating it."""

        def _get_service_account_name(self, settings: Any) -> str:
            return settings.service_account_name or DEFAULT_SERVICE_ACCOUNT

    orchestrator.__class__ = CompileOnly
    settings = orchestrator.get_settings(snapshot)
    base, _ = _environments(snapshot, stack)
    pod_settings = settings.orchestrator_pod_settings or KubernetesPodSettings()
    if orchestrator.config.pass_zenml_token_as_secret:  # as the orchestrator does: the pod reads it from a secret
        base.pop(TOKEN_VARIABLE, None)
        secret = {"name": orchestrator.get_token_secret_name(snapshot.id), "key": KUBERNETES_SECRET_TOKEN_KEY_NAME}
        pod_settings.env.append({"name": TOKEN_VARIABLE, "valueFrom": {"secretKeyRef": secret}})
    job = orchestrator._prepare_job_manifest(
        name=orchestrator._get_job_name(settings, pipeline_name=snapshot.pipeline_configuration.name),
        command=Entrypoint.get_entrypoint_command(),
        args=Entrypoint.get_entrypoint_arguments(snapshot_id=snapshot.id, run_id=None),
        image=orchestrator.get_image(snapshot=snapshot),
        environment=base,
        labels={"pipeline": snapshot.pipeline_configuration.name},
        annotations={},
        settings=settings,
        pod_settings=pod_settings,
    )
    return _write([ApiClient().sanitize_for_serialization(job)], output)


def compile_training(config: RunConfig, image: str, output_dir: Path) -> Compiled:
    """Compile the training pipeline for the active stack's orchestrator into `output_dir`."""
    from zenml.client import Client
    from zenml.stack import Stack

    from stacks.capabilities import active_capabilities
    from workflows.runner import configured_training

    capabilities = active_capabilities()
    stack_model = Client().active_stack_model
    flavor = capabilities.components["orchestrator"].flavor
    if flavor not in COMPILED_FLAVORS:
        raise CompileError(
            f"stack `{stack_model.name}` runs pipelines with the `{flavor}` orchestrator; offline compiling is for "
            f"{' and '.join(COMPILED_FLAVORS)}. Fix: `zenml stack set` a cluster stack (stacks/examples/)."
        )
    stack = Stack.from_model(stack_model)
    stack.validate()
    pipeline, parameters = configured_training(config, capabilities, settings={"docker": _docker_settings(image)})
    pipeline.prepare(**parameters)
    name = f"offline-compile-{time.strftime('%Y%m%d-%H%M%S')}"
    snapshot = pipeline.create_snapshot(name=name)
    output_dir.mkdir(parents=True, exist_ok=True)
    compile_to = _compile_kubeflow if flavor == "kubeflow" else _compile_kubernetes
    path = compile_to(stack.orchestrator, snapshot, stack, output_dir / f"{pipeline.name}.{flavor}.yaml")
    return Compiled(stack_model.name, flavor, path, name, tuple(snapshot.step_configurations))

"""The ZenML 0.98 internals the in-process ZenML deployment relies on (serving/backends/zenml_service.py).

Each test names the hook it checks: if a ZenML upgrade changes one, this fails with that name, before a deploy
fails in a less obvious way. The deployment tests (tests/test_deployment.py) check the behaviour end to end.
"""

from __future__ import annotations

import inspect


def test_hook_deployment_settings_take_a_service_class_and_its_kwargs():
    from zenml.config import DeploymentSettings
    from zenml.config.deployment_settings import DeploymentDefaultEndpoints

    fields = DeploymentSettings.model_fields
    assert {"deployment_service_class", "deployment_service_kwargs", "include_default_endpoints"} <= set(fields), (
        "hook changed: DeploymentSettings.deployment_service_class / deployment_service_kwargs"
    )
    assert DeploymentDefaultEndpoints.SUBMIT in DeploymentDefaultEndpoints.ALL, "hook changed: the /submit endpoint"


def test_hook_the_app_instantiates_the_configured_service_with_its_kwargs():
    from zenml.deployers.server.app import BaseDeploymentAppRunner

    source = inspect.getsource(BaseDeploymentAppRunner.load_deployment_service)
    assert "settings.deployment_service_class" in source, "hook changed: zenml/deployers/server/app.py service class"
    assert "service_cls(self, **settings.deployment_service_kwargs)" in source, (
        "hook changed: how zenml/deployers/server/app.py instantiates the deployment service"
    )


def test_hook_pipeline_deployment_service_internals():
    from zenml.deployers.server.service import PipelineDeploymentService

    assert list(inspect.signature(PipelineDeploymentService.__init__).parameters)[:2] == ["self", "app_runner"]
    assert "run_init_hook" in inspect.getsource(PipelineDeploymentService.initialize), (
        "hook changed: PipelineDeploymentService.initialize no longer runs the init hook"
    )
    assert list(inspect.signature(PipelineDeploymentService.execute_pipeline).parameters) == ["self", "request"], (
        "hook changed: PipelineDeploymentService.execute_pipeline(request)"
    )
    build = inspect.signature(PipelineDeploymentService._build_response).parameters
    assert {"resolved_params", "start_time", "mapped_outputs", "placeholder_run", "error"} <= set(build), (
        "hook changed: PipelineDeploymentService._build_response"
    )


def test_hook_the_init_hook_state_lives_in_the_process_wide_run_context():
    from zenml.steps.step_context import RunContext, get_or_create_run_context

    assert isinstance(get_or_create_run_context(), RunContext)
    assert isinstance(inspect.getattr_static(RunContext, "state"), property), "hook changed: RunContext.state"


def test_our_service_overrides_only_what_it_means_to():
    from serving.backends.zenml_service import InProcessInferenceService

    overridden = {name for name in vars(InProcessInferenceService) if not name.startswith("_")}
    assert overridden == {
        "initialize",
        "execute_pipeline",
        "execute_recorded",
        "records_this_one",
        "answer_frame",
        "log_answer",
    }

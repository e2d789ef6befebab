"""Online inference as a ZenML pipeline, served by ZenML's pipeline deployer on stacks without a model deployer.

The deployment loads the model once (`on_init`). It answers ZenML's own `POST /invoke`
(`{"parameters": {"records": [...]}}`) and, with the same contract as the BentoML service, `POST /predict`
(`{"records": [...]}`), which rejects a bad request with 4xx before a pipeline run is started.
"""

import asyncio
from typing import Annotated, Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from zenml import get_step_context, pipeline, step
from zenml.client import Client

from lifecycle.config import DeploymentConfig
from lifecycle.names import FEATURE_SCHEMA, INFERENCE_PIPELINE, MODEL
from serving.contract import DEFAULT_MAX_ROWS, BodyLimit, RequestError, answer, json_records, parse_body, records_frame

# Pipeline runs in progress at once, per server; further requests wait their turn. Every run is recorded in the
# ZenML store, whose connection pool (5 + 10 overflow) starves under some 15+ concurrent runs: requests then failed
# after 30 s (HTTP 500). A few at once already give all the throughput the store allows (about 3 runs/s).
MAX_CONCURRENT_RUNS = 4


def load_serving_state(
    model_name: str = "", model_version: str = "", max_rows: int = DEFAULT_MAX_ROWS
) -> dict[str, Any]:
    """Runs once when the deployment starts: the model version's model and feature schema."""
    version = Client().get_model_version(model_name, model_version)
    return {
        "model": version.get_model_artifact(MODEL).load(),
        "schema": version.get_artifact(FEATURE_SCHEMA).load(),
        "model_name": model_name,
        "model_version": str(version.number),
        "max_rows": max_rows,
    }


@step(enable_cache=False)
def predict_records(records: list[dict[str, Any]]) -> Annotated[dict[str, Any], "response"]:
    state = get_step_context().pipeline_state
    return answer(
        state["model"],
        state["schema"],
        {"records": records},
        state["model_name"],
        state["model_version"],
        state["max_rows"],
    )


@pipeline(name=INFERENCE_PIPELINE, enable_cache=False, on_init=load_serving_state)
def inference_service(records: list[dict[str, Any]]) -> dict[str, Any]:
    return predict_records(records)


def contract_endpoint(app_runner: Any, model_name: str, model_version: str, max_rows: int, max_body_bytes: int):
    """Builds `POST /predict`: our request contract, validated here, predicted by a pipeline invocation.
    (This module has no `from __future__ import annotations`: FastAPI reads the `Request` annotation.)"""

    schema = Client().get_model_version(model_name, model_version).get_artifact(FEATURE_SCHEMA).load()
    invoke_request, _ = app_runner.service.get_pipeline_invoke_models()
    running = asyncio.Semaphore(MAX_CONCURRENT_RUNS)

    async def predict(request: Request) -> JSONResponse:
        try:
            payload = parse_body(await request.body(), max_body_bytes)
            records_frame(payload, schema, max_rows)
        except RequestError as error:
            return JSONResponse(error.body(), status_code=error.status)
        async with running:
            result = await run_in_threadpool(
                app_runner.service.execute_pipeline, invoke_request(parameters={"records": payload["records"]})
            )
        if not result.success:
            return JSONResponse({"error": f"prediction failed: {result.error}"}, status_code=500)
        return JSONResponse(next(iter(result.outputs.values())))

    return predict


def deployable_inference_pipeline(release: Any, host: str, port: int, config: DeploymentConfig):
    """`inference_service` configured to serve `release` on host:port (no other port: the caller chose it)."""
    from zenml.config import DeploymentSettings
    from zenml.config.deployment_settings import EndpointMethod, EndpointSpec, MiddlewareSpec
    from zenml.deployers.local.local_deployer import LocalDeployerSettings

    limits = {"max_rows": config.max_rows_per_request, "max_body_bytes": config.max_body_bytes}
    deployment = DeploymentSettings(
        app_title=f"{release.model_name} version {release.model_version}",
        custom_endpoints=[
            EndpointSpec(
                path="/predict",
                method=EndpointMethod.POST,
                handler=contract_endpoint,
                init_kwargs={"model_name": release.model_name, "model_version": release.model_version, **limits},
            )
        ],
        custom_middlewares=[
            MiddlewareSpec(middleware=BodyLimit, native=True, extra_kwargs={"max_bytes": config.max_body_bytes})
        ],
    )
    deployer = LocalDeployerSettings(port=port, address=host, allocate_port_if_busy=False, blocking=False)
    example = json_records(_example_rows(release), release.schema)
    return inference_service.with_options(
        settings={"deployer": deployer, "deployment": deployment},
        on_init_kwargs={
            "model_name": release.model_name,
            "model_version": release.model_version,
            "max_rows": config.max_rows_per_request,
        },
    ).configure(parameters={"records": example})


def _example_rows(release: Any):
    from lifecycle.names import TEST_SET

    test_set = Client().get_model_version(release.model_name, release.model_version).get_artifact(TEST_SET).load()
    return test_set.head(1)

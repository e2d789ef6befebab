"""Online inference as a ZenML pipeline, served by ZenML's pipeline deployer on stacks without a model deployer.

The deployment loads the model once (`on_init`). It answers ZenML's own `POST /invoke`
(`{"parameters": {"records": [...]}}`) and, with the same contract as the BentoML service, `POST /predict`
(`{"records": [...]}`), which rejects a bad request with 4xx before anything runs.

`InProcessInferenceService` answers both from the model loaded at start-up, in the server's own process, without
the snapshot, pipeline run, step run and artifacts that ZenML's default service records for every request
(about 0.35 s each, and the store's connection pool caps concurrency). The deploy itself is still a recorded
pipeline run, and `record_every: N` (configs/deployment.yaml) runs and records the full pipeline for one request
in N, for audit. ZenML's `/submit` (a recorded run in the background) is not offered.

It relies on ZenML 0.98's deployment-service hook (`DeploymentSettings.deployment_service_class`, loaded by
`zenml/deployers/server/app.py`) and on `PipelineDeploymentService` internals (`initialize`, `execute_pipeline`,
`_build_response`, the run context holding the init hook's state): `tests/test_zenml_hooks.py` fails, naming
the hook, if an upgrade changes them.
"""

import contextvars
import itertools
import logging
import os
import time
from typing import Annotated, Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from zenml import get_step_context, pipeline, step
from zenml.client import Client
from zenml.deployers.server.service import PipelineDeploymentService
from zenml.steps.step_context import get_or_create_run_context

from lifecycle.config import DeploymentConfig
from lifecycle.model_versions import loaded_artifact, loaded_model
from lifecycle.names import FEATURE_SCHEMA, INFERENCE_PIPELINE, MODEL
from serving.contract import (
    DEFAULT_MAX_ROWS,
    BodyLimit,
    RequestError,
    json_records,
    logged_answer,
    parse_body,
    predict_response,
    records_frame,
)
from serving.prediction_log import REQUEST_ID_HEADER, LogWriteError, new_request_id, process_log

RESPONSE = "response"  # the inference pipeline's one output
LOG_UNAVAILABLE = 503  # the answer is withheld when its rows cannot be logged
_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("mlops_request_id", default=None)
_logger = logging.getLogger(__name__)

# One OpenMP thread per prediction, as in the BentoML service (see there): requests are answered in a pool of
# threads, and on busy CPUs their OpenMP teams wait on each other. Read when scikit-learn loads, after this import.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def load_serving_state(
    model_name: str = "", model_version: str = "", max_rows: int = DEFAULT_MAX_ROWS
) -> dict[str, Any]:
    """Runs once when the deployment starts: the model version's model and feature schema."""
    version = Client().get_model_version(model_name, model_version)
    return {
        "model": loaded_model(version, MODEL),
        "schema": loaded_artifact(version, FEATURE_SCHEMA),
        "model_name": model_name,
        "model_version": str(version.number),
        "max_rows": max_rows,
    }


def predict_state(state: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The contract's answer from the serving state (the recorded step's path; it is logged by the service)."""
    return logged_answer(
        state["model"],
        state["schema"],
        {"records": records},
        state["model_name"],
        state["model_version"],
        state["max_rows"],
        None,
        "",
        time.perf_counter(),
    )


def _serving_state(state: Any) -> dict[str, Any]:
    """The state `load_serving_state` made (ZenML types a pipeline's state as anything, or none)."""
    if not isinstance(state, dict):
        raise RuntimeError(f"the inference pipeline has no serving state ({load_serving_state.__name__} did not run)")
    return state


@step(enable_cache=False)
def predict_records(records: list[dict[str, Any]]) -> Annotated[dict[str, Any], RESPONSE]:
    return predict_state(_serving_state(get_step_context().pipeline_state), records)


@pipeline(name=INFERENCE_PIPELINE, enable_cache=False, on_init=load_serving_state)
def inference_service(records: list[dict[str, Any]]) -> dict[str, Any]:
    return predict_records(records)


class InProcessInferenceService(PipelineDeploymentService):
    """ZenML's deployment service, answering each request in-process from the state the init hook loaded once;
    one request in `record_every` (0: none) runs the full pipeline instead, recorded in the ZenML store. Every
    answered request, either way, goes to the prediction log before it is answered."""

    def __init__(
        self,
        app_runner: Any,
        record_every: int = 0,
        log: dict[str, Any] | None = None,
        server: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(app_runner, **kwargs)
        self.record_every = record_every
        self.log_settings = log
        self.server = server
        self._served = itertools.count(1)

    def initialize(self) -> None:
        super().initialize()  # runs the init hook once: the model and schema, in the process-wide run context
        self.state = _serving_state(get_or_create_run_context().state)
        self.log = served_log(self.log_settings, self.state["model_name"], self.state["model_version"], self.server)

    def records_this_one(self) -> bool:
        """Whether this request takes the audit path (a full, recorded pipeline run): one in `record_every`."""
        return bool(self.record_every) and next(self._served) % self.record_every == 0

    def log_answer(self, records: list[dict[str, Any]], response: dict[str, Any], request_id: str, started: float):
        """The response with its request id, its rows appended to the prediction log first."""
        response["request_id"] = request_id
        if self.log is not None:
            self.log.record(
                request_id,
                records,
                self.state["schema"].model_inputs,
                response["predictions"],
                response.get("probabilities"),
                (time.perf_counter() - started) * 1000,
            )
        return response

    def answer_frame(
        self, records: list[dict[str, Any]], frame: Any, request_id: str, started: float
    ) -> dict[str, Any]:
        """The contract's answer for rows already checked by `records_frame` (no second check), logged."""
        state = self.state
        response = predict_response(state["model"], frame, state["model_name"], state["model_version"])
        return self.log_answer(records, response, request_id, started)

    def execute_recorded(self, request: Any, request_id: str = "", started: float | None = None) -> Any:
        """ZenML's own path: a snapshot, a pipeline run, step runs and artifacts, all recorded; then logged."""
        started = time.perf_counter() if started is None else started
        result = super().execute_pipeline(request)
        if result.success and result.outputs:
            response = next(iter(result.outputs.values()))
            records = request.parameters.model_dump()["records"]
            self.log_answer(records, response, request_id or new_request_id(), started)
        return result

    def execute_pipeline(self, request: Any) -> Any:
        """ZenML's `/invoke`: answered in-process (or, one in `record_every`, recorded), logged either way, under
        the request's id (`RequestIds`); a request whose rows cannot be logged gets 503, no answer."""
        request_id = _REQUEST_ID.get() or new_request_id()
        try:
            if self.records_this_one():
                return self.execute_recorded(request, request_id)
            started = time.time()
            clock = time.perf_counter()
            parameters = request.parameters.model_dump()
            state = self.state
            try:
                response = logged_answer(
                    state["model"],
                    state["schema"],
                    {"records": parameters["records"]},
                    state["model_name"],
                    state["model_version"],
                    state["max_rows"],
                    self.log,
                    request_id,
                    clock,
                )
            except LogWriteError:
                raise
            except Exception as error:  # answered as ZenML answers a failed run: success false, the error named
                return self._build_response(resolved_params=parameters, start_time=started, error=error)
        except LogWriteError as error:
            _logger.error("%s", error)
            raise HTTPException(LOG_UNAVAILABLE, LogWriteError.CLIENT_MESSAGE) from error
        return self._build_response(resolved_params=parameters, start_time=started, mapped_outputs={RESPONSE: response})


def served_log(settings: dict[str, Any] | None, model_name: str, model_version: str, server: str = ""):
    return process_log(settings, model_name, model_version, "zenml", server)


def contract_endpoint(
    app_runner: Any, model_name: str, model_version: str, max_rows: int, max_body_bytes: int, log: Any = None
):
    """Builds `POST /predict`: our request contract, validated here, answered by the deployment service.
    (This module has no `from __future__ import annotations`: FastAPI reads the `Request` annotation.)"""

    schema = loaded_artifact(Client().get_model_version(model_name, model_version), FEATURE_SCHEMA)
    service = app_runner.service
    invoke_request, _ = service.get_pipeline_invoke_models()
    rejections = served_log(log, model_name, model_version)

    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        request_id = _REQUEST_ID.get() or new_request_id(request.headers.get(REQUEST_ID_HEADER))
        headers = {REQUEST_ID_HEADER: request_id}
        try:
            return await answer(request, request_id, headers, started)
        except LogWriteError as error:
            _logger.error("%s", error)
            return JSONResponse({"error": LogWriteError.CLIENT_MESSAGE}, status_code=LOG_UNAVAILABLE, headers=headers)

    async def answer(request: Request, request_id: str, headers: dict[str, str], started: float) -> JSONResponse:
        try:
            payload = parse_body(await request.body(), max_body_bytes)
            frame = records_frame(payload, schema, max_rows)
        except RequestError as error:
            if rejections is not None:
                rejections.reject(error.status, str(error))
            return JSONResponse(error.body(), status_code=error.status, headers=headers)
        records = payload["records"]
        in_process = isinstance(service, InProcessInferenceService)
        if in_process and not service.records_this_one():
            answered = await run_in_threadpool(service.answer_frame, records, frame, request_id, started)
            return JSONResponse(answered, headers=headers)
        invoke = invoke_request(parameters={"records": records})
        if in_process:
            result = await run_in_threadpool(service.execute_recorded, invoke, request_id, started)
        else:
            result = await run_in_threadpool(service.execute_pipeline, invoke)
        if not result.success:
            return JSONResponse({"error": f"prediction failed: {result.error}"}, status_code=500, headers=headers)
        return JSONResponse(next(iter(result.outputs.values())), headers=headers)

    return predict


class RequestIds:
    """ASGI middleware: each HTTP request's id by the rule of every server (`new_request_id`: the client's
    usable X-Request-ID, else a new one), for `/predict` and ZenML's own `/invoke` alike, and returned as the
    X-Request-ID header."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = REQUEST_ID_HEADER.lower().encode()
        sent = next((value for name, value in scope.get("headers") or [] if name == header), b"")
        request_id = new_request_id(sent.decode("latin-1"))
        token = _REQUEST_ID.set(request_id)

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers") or [] if k.lower() != header]
                message = {**message, "headers": [*headers, (header, request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _REQUEST_ID.reset(token)


def deployable_inference_pipeline(release: Any, host: str, port: int, config: DeploymentConfig, server: str = ""):
    """`inference_service` configured to serve `release` on host:port (no other port: the caller chose it)."""
    from zenml.config import DeploymentSettings
    from zenml.config.deployment_settings import (
        DeploymentDefaultEndpoints,
        EndpointMethod,
        EndpointSpec,
        MiddlewareSpec,
    )
    from zenml.deployers.local.local_deployer import LocalDeployerSettings

    limits = {"max_rows": config.max_rows_per_request, "max_body_bytes": config.max_body_bytes}
    deployment = DeploymentSettings(
        app_title=f"{release.model_name} version {release.model_version}",
        deployment_service_class=InProcessInferenceService,
        deployment_service_kwargs={
            "record_every": config.record_every,
            "log": config.log.settings(release.role),
            "server": server,
        },
        include_default_endpoints=DeploymentDefaultEndpoints.ALL & ~DeploymentDefaultEndpoints.SUBMIT,
        custom_endpoints=[
            EndpointSpec(
                path="/predict",
                method=EndpointMethod.POST,
                handler=contract_endpoint,
                init_kwargs={
                    "model_name": release.model_name,
                    "model_version": release.model_version,
                    "log": config.log.settings(release.role),
                    **limits,
                },
            )
        ],
        custom_middlewares=[
            MiddlewareSpec(middleware=RequestIds, native=True),
            MiddlewareSpec(
                middleware=CountedBodyLimit,
                native=True,
                extra_kwargs={
                    "max_bytes": config.max_body_bytes,
                    "log": config.log.settings(release.role),
                    "model_name": release.model_name,
                    "model_version": str(release.model_version),
                },
            ),
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


class CountedBodyLimit(BodyLimit):
    """The body-size limit, counting each 413 in the prediction log (plain keyword arguments: ZenML records a
    middleware's arguments in the deployment's snapshot)."""

    def __init__(
        self, app: Any, max_bytes: int, log: dict | None = None, model_name: str = "", model_version: str = ""
    ):
        writer = served_log(log, model_name, model_version)
        super().__init__(app, max_bytes, on_reject=_counting(writer))


def _counting(writer: Any) -> Any:
    """A body-limit rejection's count in the log; a count the log cannot take is reported in the server's own
    log, and the client still gets its 413."""
    if writer is None:
        return None

    def count(status: int, error: str) -> None:
        try:
            writer.reject(status, error)
        except LogWriteError as failure:
            _logger.error("%s", failure)

    return count


def _example_rows(release: Any):
    from lifecycle.names import TEST_SET

    test_set = loaded_artifact(Client().get_model_version(release.model_name, release.model_version), TEST_SET)
    return test_set.head(1)

"""The model MLflow stores and serves: the sklearn pipeline wrapped as an `mlflow.pyfunc` model that checks rows
with this project's request contract and writes the prediction log, so MLflow's own scoring server (`/invocations`)
logs every answered row like the other backends. Still an ordinary MLflow model: `mlflow.pyfunc.load_model`
loads it anywhere (its predictions are logged there too, to the folder in its config or MLOPS_PREDICTION_LOG).

Request: MLflow's (`{"dataframe_records": [...]}`). A client's request id: the `X-Request-ID` header (what the
front door sends, as for every backend), else `{"params": {"request_id": ...}}`.
Answer: one object per row, `{"prediction": ..., "request_id": ...}` (and `probability` for classifiers).
A row that breaks the contract fails the request with 400 and the contract's message.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import types
from contextvars import ContextVar
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

LOG_SETTINGS_ENV = "MLOPS_PREDICTION_LOG_SETTINGS"  # JSON, set by the deploy: its log settings win
PIPELINE_ARTIFACT = "pipeline"

# One OpenMP thread per prediction, as in the other servers (see bentoml_service.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The X-Request-ID header of the request being answered. MLflow's scoring server hands the model only the body;
# `RequestIdHeader` puts the header here, and MLflow runs the model in a thread that starts with a copy of the
# request's context (asyncio.to_thread), so `predict` sees it.
REQUEST_ID_HEADER: ContextVar[str | None] = ContextVar("request_id_header", default=None)


class RequestIdHeader:
    """ASGI middleware: the request's X-Request-ID header into REQUEST_ID_HEADER while it is answered."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(b"x-request-id")
        token = REQUEST_ID_HEADER.set(sent.decode("latin-1") if sent else None)
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_ID_HEADER.reset(token)


SCORING_APP_MODULE = "mlflow.pyfunc.scoring_server.app"  # what MLflow's server hands to uvicorn (`module:app`)


class _ScoringAppModule(types.ModuleType):
    """MLflow's scoring-app module, whose `app` is handed out wrapped in `RequestIdHeader`."""

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name == "app" and not isinstance(value, RequestIdHeader):
            value = RequestIdHeader(value)
            super().__setattr__(name, value)
        return value


def read_request_id_header() -> None:
    """In MLflow's scoring server, make the app read the X-Request-ID header. That server loads the model while
    its app module (`app = init(load_model(...))`) is still being imported, and uvicorn then takes the module's
    `app`: the module hands it out wrapped in `RequestIdHeader`. Anywhere else (batch scoring, a notebook) the
    module is not being imported and nothing changes."""
    module = sys.modules.get(SCORING_APP_MODULE)
    if module is not None and not isinstance(module, _ScoringAppModule):
        module.__class__ = _ScoringAppModule


class LoggedPipeline(PythonModel):
    """The sklearn pipeline of one Model Control Plane version, answering with request ids and logging."""

    def load_context(self, context: Any) -> None:
        import cloudpickle

        from lifecycle.validation import FeatureSchema

        read_request_id_header()
        with open(context.artifacts[PIPELINE_ARTIFACT], "rb") as handle:
            self.model = cloudpickle.load(handle)
        config = context.model_config or {}
        self.schema = FeatureSchema.model_validate(config["schema"])
        self.model_name = str(config["model_name"])
        self.model_version = str(config["model_version"])
        self.max_rows = int(config.get("max_rows", 10_000))
        settings = os.environ.get(LOG_SETTINGS_ENV)
        self.log_settings = json.loads(settings) if settings else config.get("log")

    # A DataFrame hint: MLflow infers no schema from it (a request may carry any columns) and, unlike `Any`, does
    # not warn about it when the class is defined.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

        from serving.contract import RequestError, logged_answer
        from serving.prediction_log import LogWriteError, new_request_id, process_log

        started = time.perf_counter()
        request_id = new_request_id(REQUEST_ID_HEADER.get() or (params or {}).get("request_id"))
        table = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        records = table.astype(object).where(table.notna(), None).to_dict("records")
        log = process_log(self.log_settings, self.model_name, self.model_version, "mlflow")
        try:
            response = logged_answer(
                self.model,
                self.schema,
                {"records": records},
                self.model_name,
                self.model_version,
                self.max_rows,
                log,
                request_id,
                started,
            )
        except RequestError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        except LogWriteError as error:  # no answer goes out unrecorded: 503
            logging.getLogger(__name__).error("%s", error)
            raise MlflowException(LogWriteError.CLIENT_MESSAGE, error_code=TEMPORARILY_UNAVAILABLE) from None
        answer = pd.DataFrame({"prediction": response["predictions"]})
        if "probabilities" in response:
            answer["probability"] = response["probabilities"]
        answer["request_id"] = request_id
        return answer

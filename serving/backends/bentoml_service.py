"""The BentoML service (new-style `@bentoml.service`) that serves one model version.

`POST /predict` takes `{"records": [...]}` and answers as `serving.contract` describes; `/readyz`, `/livez`
and `/metrics` are BentoML's own. The model it serves is named in `bento_model.json`, written at the root of the
bento's build folder (see `BentoMLBackend.bento_for` in `serving/backends/bentoml.py`), so each bento carries its
own model reference and the BentoML model itself (with the feature schema as a custom object).
"""

from __future__ import annotations

import json
import logging
import os
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import BentoMLException

from lifecycle.validation import FeatureSchema
from serving.contract import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_ROWS, BodyLimit, RequestError, logged_answer
from serving.prediction_log import REQUEST_ID_HEADER, LogWriteError, new_request_id, process_log

MODEL_REFERENCE_FILE = "bento_model.json"
_logger = logging.getLogger(__name__)

# One OpenMP thread per prediction (read when scikit-learn loads, in `__init__`): requests are predicted in a pool of
# threads, each with its own OpenMP team, and on busy CPUs those teams wait on each other. With two other busy
# processes on 2 CPUs a one-row request took 3.6 s instead of 40 ms, and 32 clients got 504s; a few rows per
# request gain nothing from parallel trees.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def model_reference() -> dict[str, Any]:
    path = Path(__file__).resolve().parents[2] / MODEL_REFERENCE_FILE  # the build folder's root
    return json.loads(path.read_text())


class BadRequest(BentoMLException):
    error_code = HTTPStatus.UNPROCESSABLE_ENTITY


class PayloadTooLarge(BentoMLException):
    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class EmptyRequest(BentoMLException):
    error_code = HTTPStatus.BAD_REQUEST


class LogUnavailable(BentoMLException):
    """The request's rows could not be logged: no answer goes out unrecorded."""

    error_code = HTTPStatus.SERVICE_UNAVAILABLE


_REFERENCE = model_reference()
_ERRORS = {400: EmptyRequest, 413: PayloadTooLarge}


def prediction_log():
    """This worker process's prediction log writer (None: logging off)."""
    return process_log(_REFERENCE.get("log"), _REFERENCE["model_name"], str(_REFERENCE["model_version"]), "bentoml")


def count_rejection(status: int, error: str) -> None:
    """A body-limit rejection's count; one the log cannot take goes to the server's own log (the 413 still goes
    out)."""
    log = prediction_log()
    if log is not None:
        try:
            log.reject(status, error)
        except LogWriteError as failure:
            _logger.error("%s", failure)


@bentoml.service(name="mlops_lifecycle_model", traffic={"timeout": 60})
class TabularModel:
    bento_model = bentoml.models.BentoModel(_REFERENCE["tag"])

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.bento_model)
        self.schema = FeatureSchema.model_validate(self.bento_model.custom_objects["feature_schema"])
        self.model_name = _REFERENCE["model_name"]
        self.model_version = str(_REFERENCE["model_version"])

    @bentoml.api(route="/predict")
    def predict(self, records: list[Any], ctx: bentoml.Context) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            request_id = new_request_id(ctx.request.headers.get(REQUEST_ID_HEADER))
            ctx.response.headers[REQUEST_ID_HEADER] = request_id
        except LookupError:  # called in-process, outside an HTTP request
            request_id = new_request_id()
        try:
            return logged_answer(
                self.model,
                self.schema,
                {"records": records},
                self.model_name,
                self.model_version,
                _REFERENCE.get("max_rows", DEFAULT_MAX_ROWS),
                prediction_log(),
                request_id,
                started,
            )
        except RequestError as error:
            raise _ERRORS.get(error.status, BadRequest)(str(error)) from None
        except LogWriteError as error:
            _logger.error("%s", error)
            raise LogUnavailable(LogWriteError.CLIENT_MESSAGE) from None


# `@bentoml.service` returns a bentoml Service, which bentoml's annotations type as the class it wraps.
TabularModel.add_asgi_middleware(  # type: ignore[attr-defined]
    BodyLimit, max_bytes=_REFERENCE.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES), on_reject=count_rejection
)

"""The BentoML service (new-style `@bentoml.service`) that serves one model version.

`POST /predict` takes `{"records": [...]}` and answers as `lifecycle.serving` describes; `/readyz`, `/livez`
and `/metrics` are BentoML's own. The model it serves is named in `bento_model.json`, written beside the
`lifecycle` package in the bento's build folder (see `BentoMLBackend.bento_for` in `stacks/serving.py`), so
each bento carries its own model reference and the BentoML model itself (with the feature schema as a custom
object).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import BentoMLException

from lifecycle.serving import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_ROWS, BodyLimit, RequestError, answer
from lifecycle.validation import FeatureSchema

MODEL_REFERENCE_FILE = "bento_model.json"


def model_reference() -> dict[str, Any]:
    path = Path(__file__).resolve().parent.parent / MODEL_REFERENCE_FILE
    return json.loads(path.read_text())


class BadRequest(BentoMLException):
    error_code = HTTPStatus.UNPROCESSABLE_ENTITY


class PayloadTooLarge(BentoMLException):
    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class EmptyRequest(BentoMLException):
    error_code = HTTPStatus.BAD_REQUEST


_REFERENCE = model_reference()
_ERRORS = {400: EmptyRequest, 413: PayloadTooLarge}


@bentoml.service(name="mlops_lifecycle_model", traffic={"timeout": 60})
class TabularModel:
    bento_model = bentoml.models.BentoModel(_REFERENCE["tag"])

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.bento_model)
        self.schema = FeatureSchema.model_validate(self.bento_model.custom_objects["feature_schema"])
        self.model_name = _REFERENCE["model_name"]
        self.model_version = str(_REFERENCE["model_version"])

    @bentoml.api(route="/predict")
    def predict(self, records: list[Any]) -> dict[str, Any]:
        try:
            return answer(
                self.model,
                self.schema,
                {"records": records},
                self.model_name,
                self.model_version,
                _REFERENCE.get("max_rows", DEFAULT_MAX_ROWS),
            )
        except RequestError as error:
            raise _ERRORS.get(error.status, BadRequest)(str(error)) from None


TabularModel.add_asgi_middleware(BodyLimit, max_bytes=_REFERENCE.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))

"""The model MLflow stores and serves: the sklearn pipeline wrapped as an `mlflow.pyfunc` model that checks rows
with this project's request contract and writes the prediction log, so MLflow's own scoring server (`/invocations`)
logs every answered row like the other backends. Still an ordinary MLflow model: `mlflow.pyfunc.load_model`
loads it anywhere (its predictions are logged there too, to the folder in its config or MLOPS_PREDICTION_LOG).

Request: MLflow's (`{"dataframe_records": [...]}`; a client's request id as `{"params": {"request_id": ...}}`).
Answer: one object per row, `{"prediction": ..., "request_id": ...}` (and `probability` for classifiers).
A row that breaks the contract fails the request with 400 and the contract's message.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

LOG_SETTINGS_ENV = "MLOPS_PREDICTION_LOG_SETTINGS"  # JSON, set by the deploy: its log settings win
PIPELINE_ARTIFACT = "pipeline"

# One OpenMP thread per prediction, as in the other servers (see bentoml_service.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")


class LoggedPipeline(PythonModel):
    """The sklearn pipeline of one Model Control Plane version, answering with request ids and logging."""

    def load_context(self, context: Any) -> None:
        import cloudpickle

        from lifecycle.validation import FeatureSchema

        with open(context.artifacts[PIPELINE_ARTIFACT], "rb") as handle:
            self.model = cloudpickle.load(handle)
        config = context.model_config or {}
        self.schema = FeatureSchema.model_validate(config["schema"])
        self.model_name = str(config["model_name"])
        self.model_version = str(config["model_version"])
        self.max_rows = int(config.get("max_rows", 10_000))
        settings = os.environ.get(LOG_SETTINGS_ENV)
        self.log_settings = json.loads(settings) if settings else config.get("log")

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

        from serving.contract import RequestError, logged_answer
        from serving.prediction_log import LogWriteError, new_request_id, process_log

        started = time.perf_counter()
        request_id = new_request_id((params or {}).get("request_id"))
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

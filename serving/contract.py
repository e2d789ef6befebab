"""The request contract of the servers this project owns (BentoML service, ZenML deployment).

A request is `{"records": [{"column": value, ...}, ...]}`: one object per row, carrying the model's inputs
(features and time columns; other scalar fields, e.g. an order id, are kept in the prediction log to join labels
on). The response is
`{"predictions": [...], "model_name": ..., "model_version": ..., "request_id": ...}` (plus `probabilities` for
classifiers); the request id is also the `X-Request-ID` response header (a client's own `X-Request-ID` is kept).
A request that breaks the contract raises `RequestError` with an HTTP status and a message naming the problem:
the server answers with that status and `{"error": message}`, and keeps serving.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifecycle.errors import LifecycleError
from lifecycle.validation import FeatureSchema, is_boolean_value

if TYPE_CHECKING:
    from serving.prediction_log import PredictionLog

DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DRAIN_FACTOR = 4


class RequestError(LifecycleError):
    """A request that breaks the contract: answered with `status` and the message, never a server error."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": str(self)}


def parse_body(raw: bytes, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    if len(raw) > max_bytes:
        raise RequestError(f"request body is {len(raw)} bytes; the limit is {max_bytes}. Send fewer rows.", 413)
    if not raw.strip():
        raise RequestError('empty request body. Send {"records": [{"column": value, ...}, ...]}.', 400)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise RequestError(f"request body is not valid JSON ({exc}).", 400) from exc


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _numeric_column(column: str, values: list[Any]) -> np.ndarray:
    """A numeric input's values as floats: JSON numbers, or numerals sent as text ("1.5"); null is missing."""
    numbers = np.full(len(values), np.nan)
    for index, value in enumerate(values):
        if value is None:
            continue
        number: Any = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        ok = isinstance(number, int | float) and not isinstance(number, bool) and _finite(number)
        if not ok:
            raise RequestError(f"record {index}: `{column}` is {_describe(value)}; expected a finite number or null.")
        numbers[index] = number
    return numbers


def records_frame(payload: Any, schema: FeatureSchema, max_rows: int = DEFAULT_MAX_ROWS) -> pd.DataFrame:
    """The rows of a request as a table the model accepts, or a RequestError naming what is wrong."""
    records = payload.get("records") if isinstance(payload, dict) else None
    if not isinstance(records, list):
        raise RequestError('expected a JSON object {"records": [{"column": value, ...}, ...]}.', 400)
    if not records:
        raise RequestError('"records" is empty: send at least one row.', 400)
    if len(records) > max_rows:
        raise RequestError(f'"records" has {len(records)} rows; the limit is {max_rows} per request.', 413)
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise RequestError(f"record {index} is {type(record).__name__}, expected an object of column: value.")
    missing = sorted({c for record in records for c in schema.model_inputs if c not in record})
    if missing:
        raise RequestError(
            f"records miss the model input(s) {', '.join(missing)}; every record needs: "
            f"{', '.join(schema.model_inputs)} (null for an unknown value)."
        )
    columns: dict[str, np.ndarray] = {}  # built as arrays, then one DataFrame: a few rows cost little
    booleans = set(schema.boolean_features)
    for column in schema.model_inputs:
        values = [record[column] for record in records]
        if column in schema.numeric_features:
            columns[column] = _numeric_column(column, values)
            continue
        boolean, time = column in booleans, column in schema.time_columns
        for index, value in enumerate(values):
            if value is None:
                continue
            if time:
                ok = isinstance(value, str | int | float) and not isinstance(value, bool)
                expected = "a time as text (or a number), or null"
            elif boolean:
                ok = is_boolean_value(value) or (isinstance(value, float) and math.isnan(value))
                expected = "true, false or null"
            else:
                # A JSON boolean for a column whose categories are not true/false is a client's mistake, not
                # a category: rejected rather than scored as an unseen value.
                ok = isinstance(value, str | int | float) and not isinstance(value, bool)
                expected = "a string, a number or null"
            if not ok:
                raise RequestError(f"record {index}: `{column}` is {_describe(value)}; expected {expected}.")
        # The values as sent: the model's own `as_category_strings` turns them into categories, exactly as it
        # does for a training or batch file (1, 1.0 and "1" are one category; true and "True" are one too).
        cells = np.empty(len(values), dtype=object)
        cells[:] = [str(v) if time and v is not None else v for v in values]  # times are parsed from text
        columns[column] = cells
    for column in schema.time_columns:
        fmt = schema.time_formats.get(column)
        cells = columns[column]
        stamps = pd.to_datetime(cells, format=fmt, errors="coerce")
        unparsed = np.array([cell is not None for cell in cells]) & np.asarray(pd.isna(stamps))
        if unparsed.any():
            index = int(unparsed.nonzero()[0][0])
            raise RequestError(
                f"record {index}: `{column}` is {_describe(cells[index])}; expected a time"
                + (f" in the format {fmt!r}" if fmt else "")
                + "."
            )
    return pd.DataFrame(columns, copy=False)


def json_records(table: pd.DataFrame, schema: FeatureSchema) -> list[dict[str, Any]]:
    """Rows of a table as request records (model inputs only; NaN -> null, numpy -> Python)."""
    inputs = table[schema.model_inputs].astype(object)
    inputs = inputs.where(inputs.notna(), None)
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()} for row in inputs.to_dict("records")
    ]


def predict_response(model: Any, frame: pd.DataFrame, model_name: str, model_version: str) -> dict[str, Any]:
    from lifecycle.modeling import predict_scores

    predictions, probabilities = predict_scores(model, frame)
    response: dict[str, Any] = {
        "predictions": [v.item() if isinstance(v, np.generic) else v for v in predictions],
        "model_name": model_name,
        "model_version": model_version,
    }
    if probabilities is not None:
        response["probabilities"] = np.asarray(probabilities).tolist()
    return response


def answer(
    model: Any,
    schema: FeatureSchema,
    payload: Any,
    model_name: str,
    model_version: str,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> dict[str, Any]:
    """The whole contract for a parsed request: validate, predict, respond (RequestError on a bad request)."""
    return predict_response(model, records_frame(payload, schema, max_rows), model_name, model_version)


def logged_answer(
    model: Any,
    schema: FeatureSchema,
    payload: Any,
    model_name: str,
    model_version: str,
    max_rows: int,
    log: PredictionLog | None,
    request_id: str,
    started: float,
) -> dict[str, Any]:
    """`answer`, with the request id in the response and the rows in the prediction log before it is returned
    (a rejected request is counted in the log, then raised). `started` is the request's `time.perf_counter()`."""
    try:
        frame = records_frame(payload, schema, max_rows)
    except RequestError as error:
        if log is not None:
            log.reject(error.status, str(error))
        raise
    response = predict_response(model, frame, model_name, model_version)
    response["request_id"] = request_id
    if log is not None:
        latency_ms = (time.perf_counter() - started) * 1000
        log.record(
            request_id,
            payload["records"],
            schema.model_inputs,
            response["predictions"],
            response.get("probabilities"),
            latency_ms,
        )
    return response


class BodyLimit:
    """ASGI middleware: answers 413 with a JSON error when a request body exceeds `max_bytes`, before the
    application reads it all (checks Content-Length, and counts chunked bodies as they stream)."""

    def __init__(
        self,
        app: Any,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        on_reject: Callable[[int, str], None] | None = None,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject  # e.g. the prediction log's count of rejected requests

    async def _drain(self, receive: Any) -> None:
        """Read (and drop) the rest of the body, so the client gets to read the 413 instead of a reset
        connection; a client sending far more than the limit is cut off after DRAIN_FACTOR times it."""
        drained = 0
        while drained <= self.max_bytes * DRAIN_FACTOR:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _reject(self, send: Any) -> None:
        message = f"request body exceeds {self.max_bytes} bytes. Send fewer rows."
        if self.on_reject is not None:
            self.on_reject(413, message)
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._drain(receive)
            await self._reject(send)
            return
        # No Content-Length (chunked): read the body here, up to the limit, then hand it to the application.
        # Raising inside the application's receive() would reach its own error handler (BentoML answers 500).
        buffered: list[Any] = []
        received = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                if message.get("more_body", False):
                    await self._drain(receive)
                await self._reject(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Any:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)


def prediction_difference(task: str, served: list[Any], expected: list[Any]) -> float:
    """Regression: the largest |served - expected|; classification: the share of labels that differ.
    Predictions of a different length count as entirely different (inf)."""
    if len(served) != len(expected):
        return float("inf")
    if not len(served):
        return 0.0
    if task == "regression":
        return float(np.max(np.abs(np.asarray(served, dtype=float) - np.asarray(expected, dtype=float))))
    return float(np.mean(np.asarray(served).astype(str) != np.asarray(expected).astype(str)))

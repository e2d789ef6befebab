"""The baseline for serving figures: the same model behind the smallest useful HTTP server (Starlette on uvicorn).

`POST /predict` with `{"records": [...]}` -> `{"predictions": [...]}`: JSON in, a DataFrame, `model.predict`,
JSON out — no validation, no limits. Started by `measurement.load.bare_http_server` (for `python run.py compare`
and `benchmarks/serving.py`) with the model's pickle in BARE_MODEL_PATH:

    BARE_MODEL_PATH=model.pkl python -m uvicorn measurement.bare_server:app --host 127.0.0.1 --port 8200

`answer` is the whole of a request's work apart from HTTP; the comparison's in-process floor calls it directly.
"""

import json
import os
import pickle
from typing import Any

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def answer(model: Any, body: bytes) -> bytes:
    """A request body's JSON in, the predictions' JSON out: what the server does for each request."""
    records = json.loads(body)["records"]
    return json.dumps({"predictions": model.predict(pd.DataFrame(records)).tolist()}).encode()


MODEL: Any = None
if "BARE_MODEL_PATH" in os.environ:
    with open(os.environ["BARE_MODEL_PATH"], "rb") as handle:
        MODEL = pickle.load(handle)  # written a moment earlier by bare_http_server


async def predict(request: Request) -> Response:
    return Response(answer(MODEL, await request.body()), media_type="application/json")


async def health(request: Request) -> Response:
    return Response(b'{"ok": true}', media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])

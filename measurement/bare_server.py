"""The baseline for serving figures: the same model behind the smallest useful HTTP server (Starlette on uvicorn).

`POST /predict` with `{"records": [...]}` -> `{"predictions": [...]}`: JSON in, a DataFrame, `model.predict`,
JSON out — no validation, no limits. Started by `measurement.load.bare_http_server` (for `python run.py compare`
and `benchmarks/serving.py`) with the model's pickle in BARE_MODEL_PATH:

    BARE_MODEL_PATH=model.pkl python -m uvicorn measurement.bare_server:app --host 127.0.0.1 --port 8200
"""

import os
import pickle

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

with open(os.environ["BARE_MODEL_PATH"], "rb") as handle:
    MODEL = pickle.load(handle)  # written a moment earlier by bare_http_server


async def predict(request: Request) -> JSONResponse:
    records = (await request.json())["records"]
    return JSONResponse({"predictions": MODEL.predict(pd.DataFrame(records)).tolist()})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])

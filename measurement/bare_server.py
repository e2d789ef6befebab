"""The baseline for serving figures: the same model behind the smallest useful HTTP server (Starlette on uvicorn).

`POST /predict` with `{"records": [...]}` -> `{"predictions": [...]}`: JSON in, a DataFrame, `model.predict`,
JSON out — no validation, no limits. Started by `measurement.load.bare_http_server` (for `python run.py compare`
and `benchmarks/serving.py`) with the model's pickle in BARE_MODEL_PATH:

    BARE_MODEL_PATH=model.pkl python -m uvicorn measurement.bare_server:app --host 127.0.0.1 --port 8200

`answer` is the whole of a request's work apart from HTTP; the comparison's in-process floor calls it directly,
in a process started the same way (`measurement.load.bare_floor`):

    BARE_MODEL_PATH=model.pkl python -m measurement.bare_server --floor bodies.json --requests 50 --warm-up 10
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


def main() -> None:
    """`--floor BODIES`: time `answer` on each JSON request body of the file (a list of strings), printing
    `measurement.load.in_process_latency`'s figures as JSON."""
    import argparse

    from measurement.load import in_process_latency

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--floor", required=True, help="a JSON file: the request bodies, as strings")
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--warm-up", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with open(args.floor, encoding="utf-8") as handle:
        bodies = [body.encode() for body in json.load(handle)]
    figures = in_process_latency(
        lambda body: answer(MODEL, body), bodies, args.requests, warm_up=args.warm_up, rounds=args.rounds
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

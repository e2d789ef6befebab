"""Serving measurements shared by `python run.py compare` and `benchmarks/serving.py`: a model deployed on the
active stack for the length of a measurement, and the two baselines under every server (in-process, bare HTTP)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifecycle.config import DeploymentConfig
from lifecycle.errors import LifecycleError
from lifecycle.modeling import predict_scores
from measurement.load import bare_floor, bare_http_server, in_process_latency, load_levels
from serving.backends.base import Endpoint, ServingBackend
from serving.contract import records_frame


@dataclass
class Deployed:
    backend: ServingBackend
    endpoint: Endpoint
    record: dict[str, Any]  # what the deployment recorded on the model version
    deploy_seconds: float


@contextmanager
def deployed(model_name: str, settings: DeploymentConfig) -> Iterator[Deployed]:
    """The model's production version served on the active stack, stopped when the block ends."""
    from serving.rollout import live_endpoint, undeploy
    from serving.stack_backend import active_backend
    from workflows.runner import run_deployment

    backend = active_backend()
    started = time.perf_counter()
    try:
        record = run_deployment(model_name, settings)
        seconds = time.perf_counter() - started
        endpoint = live_endpoint(backend, model_name)
        if endpoint is None:
            raise LifecycleError(f"the {backend.name} server of `{model_name}` is not healthy after its deployment")
        yield Deployed(backend, endpoint, record, seconds)
    finally:
        undeploy(backend, model_name)


def in_process_baseline(model: Any, schema: Any, bodies: list[Any], requests: int) -> dict[str, Any]:
    """Request bodies of our contract turned into a table and predicted, one after the other: the floor."""
    return in_process_latency(lambda body: predict_scores(model, records_frame(body, schema)), bodies, requests)


def in_process_floor(
    model: Any, folder: Path, bodies: list[Any], requests: int, warm_up: int = 10, rounds: int = 1
) -> dict[str, Any]:
    """The floor under every server: the bare HTTP server's whole work for a request (`bare_server.answer`: JSON
    text in, DataFrame, `model.predict`, JSON text out) called directly, one request after the other, after the
    same warm-up and in the same rounds as the servers' load, in a fresh process like the bare server's. Anything
    a server adds is HTTP and its own work."""
    encoded = [json.dumps(body).encode() for body in bodies]
    return bare_floor(model, folder, encoded, requests, warm_up=warm_up, rounds=rounds)


def bare_server_baseline(
    model: Any,
    folder: Path,
    bodies: list[Any],
    levels: list[tuple[int, int]],
    first: Any = None,
    warm_up: int = 10,
    rounds: int = 1,
) -> tuple[dict[str, Any], Any]:
    """The model behind the bare HTTP server under the same load levels; (figures, its answer to `first`, a
    request sent before the load, by default bodies[0])."""
    from serving.client import http_json

    with bare_http_server(model, folder) as (url, pid):
        _, reply = http_json(url, bodies[0] if first is None else first)
        return load_levels(url, bodies, pid, levels, warm_up=warm_up, rounds=rounds), reply
